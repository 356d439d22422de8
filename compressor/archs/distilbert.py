"""DistilBERT: its own names for the same blocks (`transformer.layer`, `q_lin`, `lin1`), no
token-type embeddings. Not prunable: `prune/shrink.py` cuts BERT-style configs only."""

from __future__ import annotations

from compressor.archs._spec import ArchSpec
from compressor.registry import ARCHITECTURES

DISTILBERT = ARCHITECTURES.register("distilbert")(
    ArchSpec(
        name="distilbert",
        model_types=("distilbert",),
        layers="transformer.layer",
        embeddings="embeddings",
        embedding_tables=("word_embeddings", "position_embeddings"),
        embedding_norm="LayerNorm",
        query="attention.q_lin",
        key="attention.k_lin",
        value="attention.v_lin",
        attention_out="attention.out_lin",
        attention_norm="sa_layer_norm",
        ffn_in="ffn.lin1",
        ffn_out="ffn.lin2",
        ffn_norm="output_layer_norm",
        heads="attention.n_heads",
        head_size="attention.attention_head_size",
        ort_model_type="bert",
        prunable=False,
    )
)
