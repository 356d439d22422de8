"""ELECTRA discriminators: BERT's layers, but the embeddings may be narrower than the
hidden width (an `embeddings_project` between them), which structured pruning does not
handle, so it is not prunable."""

from __future__ import annotations

from dataclasses import replace

from compressor.archs.bert import BERT
from compressor.registry import ARCHITECTURES

ELECTRA = ARCHITECTURES.register("electra")(
    replace(BERT, name="electra", model_types=("electra",), prunable=False)
)
