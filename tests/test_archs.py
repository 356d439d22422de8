"""Architecture specs find the right modules in tiny models of each family, and refuse the
rest in one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForSequenceClassification, PreTrainedModel

from compressor.archs import arch_of, heads_per_layer, supported_types
from compressor.errors import UserError
from compressor.prune.units import layout_of

HIDDEN, LAYERS, HEADS, FFN = 16, 3, 4, 24
# model_type -> (spec, module-name prefix of layer i, what the query / FFN-out are called)
FAMILIES = {
    "bert": ("bert", "bert.encoder.layer.{i}.", "attention.self.query", "output.dense"),
    "roberta": ("roberta", "roberta.encoder.layer.{i}.", "attention.self.query", "output.dense"),
    "xlm-roberta": (
        "roberta", "roberta.encoder.layer.{i}.", "attention.self.query", "output.dense"
    ),
    "camembert": (
        "roberta", "roberta.encoder.layer.{i}.", "attention.self.query", "output.dense"
    ),
    "electra": ("electra", "electra.encoder.layer.{i}.", "attention.self.query", "output.dense"),
    "distilbert": ("distilbert", "distilbert.transformer.layer.{i}.", "attention.q_lin",
                   "ffn.lin2"),
}  # fmt: skip


def _tiny(model_type: str) -> PreTrainedModel:
    torch.manual_seed(0)
    if model_type == "distilbert":
        sizes = {"dim": HIDDEN, "n_layers": LAYERS, "n_heads": HEADS, "hidden_dim": FFN}
    else:
        sizes = {"hidden_size": HIDDEN, "num_hidden_layers": LAYERS,
                 "num_attention_heads": HEADS, "intermediate_size": FFN}  # fmt: skip
    config = AutoConfig.for_model(model_type, vocab_size=50, max_position_embeddings=32, **sizes)
    return AutoModelForSequenceClassification.from_config(config).eval()


@pytest.mark.parametrize("model_type", list(FAMILIES))
def test_each_spec_finds_its_families_modules(model_type: str) -> None:
    model = _tiny(model_type)
    spec_name, prefix, query, ffn_out = FAMILIES[model_type]
    spec = arch_of(model)
    assert spec.name == spec_name and model_type in spec.model_types
    assert arch_of(model.config) is spec and arch_of(model_type) is spec
    assert arch_of(model.config.to_dict()) is spec
    names = {module: name for name, module in model.named_modules()}
    layers = spec.encoder_layers(model)
    assert [names[layer] for layer in layers] == [prefix.format(i=i)[:-1] for i in range(LAYERS)]
    for i, layer in enumerate(layers):
        assert names[spec.part(layer, "query")] == prefix.format(i=i) + query
        assert names[spec.part(layer, "ffn_out")] == prefix.format(i=i) + ffn_out
        q, k, v, out = (spec.part(layer, p) for p in ("query", "key", "value", "attention_out"))
        assert all(isinstance(m, nn.Linear) for m in (q, k, v, out))
        assert (q.in_features, q.out_features, out.in_features) == (HIDDEN, HIDDEN, HIDDEN)
        assert spec.part(layer, "ffn_in").out_features == FFN
        assert spec.part(layer, "ffn_out").in_features == FFN
        for norm in ("attention_norm", "ffn_norm"):
            assert isinstance(spec.part(layer, norm), nn.LayerNorm)
        assert (spec.heads_of(layer), spec.head_size_of(layer)) == (HEADS, HIDDEN // HEADS)
    embeddings = spec.embedding_module(model)
    assert embeddings is model.base_model.embeddings
    assert getattr(embeddings, spec.embedding_tables[0]) is model.get_input_embeddings()
    assert all(isinstance(getattr(embeddings, t), nn.Embedding) for t in spec.embedding_tables)
    assert isinstance(getattr(embeddings, spec.embedding_norm), nn.LayerNorm)
    assert heads_per_layer(model) == [HEADS] * LAYERS


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_the_ffn_out_part_is_what_reads_the_ffn_activations(model_type: str) -> None:
    """Masks and cuts act on what the spec names; a wrong name would see another width."""
    model = _tiny(model_type)
    spec = arch_of(model)
    seen: list[int] = []
    layer = spec.encoder_layers(model)[1]
    handle = spec.part(layer, "ffn_out").register_forward_pre_hook(
        lambda _m, args: seen.append(args[0].shape[-1])
    )
    with torch.no_grad():
        model(input_ids=torch.tensor([[1, 7, 9, 2]]))
    handle.remove()
    assert seen == [FFN]


def test_head_pruning_shows_per_layer() -> None:
    model = _tiny("bert")
    model.prune_heads({0: [1, 3], 2: [0]})
    assert heads_per_layer(model) == [2, 4, 3]


def test_the_ort_optimizer_knows_every_specs_model_type() -> None:
    from onnxruntime.transformers.optimizer import MODEL_TYPES

    for model_type in supported_types():
        assert arch_of(model_type).ort_model_type in MODEL_TYPES
    assert arch_of("distilbert").ort_model_type == "bert"


def test_unsupported_types_are_one_line_user_errors() -> None:
    with pytest.raises(UserError) as info:
        arch_of(AutoConfig.for_model("gpt2", n_layer=1, n_embd=16, n_head=2))
    message = str(info.value)
    assert "\n" not in message
    assert message == (
        "architecture 'gpt2' is not supported yet — supported: bert, distilbert, electra, "
        "roberta, xlm-roberta, camembert"
    )
    with pytest.raises(UserError, match=r"Linear has no config\.model_type"):
        arch_of(nn.Linear(2, 2))


def test_structured_pruning_takes_the_prunable_specs_only() -> None:
    assert supported_types(prunable=True) == ["bert", "roberta", "xlm-roberta", "camembert"]
    layout = layout_of(_tiny("xlm-roberta"))  # RoBERTa's layout, so RoBERTa's pruning
    assert (layout.num_heads, layout.head_dim, layout.ffn, len(layout.layers)) == (4, 4, 24, 3)
    with pytest.raises(UserError, match="not 'distilbert' — distil into a BERT student"):
        layout_of(_tiny("distilbert"))
