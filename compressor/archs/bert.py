"""BERT (and MiniLM, whose checkpoints are BERT models): the layout the others copy."""

from __future__ import annotations

from compressor.archs._spec import ArchSpec
from compressor.registry import ARCHITECTURES

BERT = ARCHITECTURES.register("bert")(
    ArchSpec(
        name="bert",
        model_types=("bert",),
        layers="encoder.layer",
        embeddings="embeddings",
        embedding_tables=("word_embeddings", "position_embeddings", "token_type_embeddings"),
        embedding_norm="LayerNorm",
        query="attention.self.query",
        key="attention.self.key",
        value="attention.self.value",
        attention_out="attention.output.dense",
        attention_norm="attention.output.LayerNorm",
        ffn_in="intermediate.dense",
        ffn_out="output.dense",
        ffn_norm="output.LayerNorm",
        heads="attention.self.num_attention_heads",
        head_size="attention.self.attention_head_size",
        ort_model_type="bert",
        prunable=True,
    )
)
