"""RoBERTa and the models that reuse its code (XLM-R, CamemBERT): BERT's layer layout under
another base model; only the classification head differs, which pruning reads off the
model itself."""

from __future__ import annotations

from dataclasses import replace

from compressor.archs.bert import BERT
from compressor.registry import ARCHITECTURES

ROBERTA = ARCHITECTURES.register("roberta")(
    replace(BERT, name="roberta", model_types=("roberta", "xlm-roberta", "camembert"))
)
