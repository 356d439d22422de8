"""Hooked Q/K/V rebuild exactly the attention the model computed, for BERT and DistilBERT."""

import pytest
import torch
from transformers import (
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from compressor.errors import UserError
from compressor.students import capture_qkv, qkv_modules


def _rebuilt_probs(qkv, mask: torch.Tensor) -> list[torch.Tensor]:
    scale = qkv[0].q.shape[-1] ** 0.5
    additive = (1 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
    return [((layer.q @ layer.k.transpose(-1, -2)) / scale + additive).softmax(-1) for layer in qkv]


def _check(model: torch.nn.Module, heads: int, layers: int, **inputs: torch.Tensor) -> None:
    model.eval()
    with torch.no_grad(), capture_qkv(model) as qkv:
        out = model(**inputs, output_attentions=True)
    assert len(qkv) == layers
    assert qkv[0].v.shape[1] == heads
    for rebuilt, returned in zip(
        _rebuilt_probs(qkv, inputs["attention_mask"]), out.attentions, strict=True
    ):
        assert torch.allclose(rebuilt, returned, atol=1e-5)
    assert not any(m._forward_hooks for roles in qkv_modules(model) for m in roles.values())


def test_bert_scores_from_hooks_softmax_to_its_attentions(tiny_teacher_dir) -> None:
    model = BertForSequenceClassification.from_pretrained(tiny_teacher_dir)
    ids = torch.tensor([[2, 10, 11, 12, 3], [2, 20, 3, 0, 0]])
    mask = (ids != 0).long()
    _check(model, model.config.num_attention_heads, 4, input_ids=ids, attention_mask=mask)


def test_distilbert_layout_is_found_too() -> None:
    torch.manual_seed(0)
    config = DistilBertConfig(vocab_size=50, dim=16, n_layers=2, n_heads=2, hidden_dim=32)
    model = DistilBertForSequenceClassification(config)
    ids = torch.tensor([[1, 5, 6, 2], [1, 7, 2, 0]])
    _check(model, 2, 2, input_ids=ids, attention_mask=(ids != 0).long())


def test_models_without_attention_projections_are_refused() -> None:
    with pytest.raises(UserError, match="query/key/value"):
        qkv_modules(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("family", ["roberta", "electra"])
def test_other_bert_family_layouts_are_found(family: str) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    torch.manual_seed(0)
    config = AutoConfig.for_model(family, vocab_size=60, hidden_size=16, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=32)  # fmt: skip
    model = AutoModelForSequenceClassification.from_config(config)
    ids = torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]])
    _check(model, 2, 2, input_ids=ids, attention_mask=(ids != 1).long())
