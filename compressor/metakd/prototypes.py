"""How typical an example is of its class across domains, and how much the meta-teacher's
knowledge of it is worth to a student.

Pan et al. (2021), sec. 3.2, eq. 1: with h(x) the example's representation and p_m^(k)
the class-m prototype of domain k (the mean h of domain k's class-m examples),

    t_i = alpha * cos(p_m^(k), h(x_i)) + zeta * sum_{k' != k} cos(p_m^(k'), h(x_i)),
    zeta = (1 - alpha) / (K - 1),

so an example scores high when it sits near its class's centre in its own domain *and* in
the others: the transferable examples the meta-teacher should learn most from. Sec. 3.3
turns it, with the teacher's confidence in the gold label p_T(y_i), into the
domain-expertise weight of meta-distillation

    lambda_i = (1 + t_i) / (exp((1 - p_T(y_i))^2) + 1),

which EasyNLP's reference code also computes this way: highest where the teacher is right
and the example is prototypical.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.data import Split


@torch.no_grad()
def mean_pooled(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    split: Split,
    *,
    max_length: int,
    batch_size: int = 64,
) -> torch.Tensor:
    """h(x): the last layer's hidden states averaged over real tokens, (N, hidden). EasyNLP
    averages all tokens but [CLS]; we keep [CLS] and drop pads, which a padded batch would
    otherwise mix in."""
    model.eval()
    out = []
    for start in range(0, len(split), batch_size):
        texts = split.texts[start : start + batch_size]
        pairs = None if split.pairs is None else split.pairs[start : start + batch_size]
        enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=True,
                        return_tensors="pt").to(model.device)  # fmt: skip
        hidden = model(**enc, output_hidden_states=True).hidden_states[-1]
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        out.append((hidden * mask).sum(1) / mask.sum(1).clamp(min=1))
    return torch.cat(out)


def class_prototypes(
    features: torch.Tensor, labels: torch.Tensor, domains: torch.Tensor, k: int, c: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """p_m^(k) for every domain and class, (K, C, hidden), and which ones exist (K, C): a
    few-shot domain may have no example of a class."""
    protos = features.new_zeros(k, c, features.shape[1])
    present = torch.zeros(k, c, dtype=torch.bool)
    for dom in range(k):
        for cls in range(c):
            chosen = (domains == dom) & (labels == cls)
            if chosen.any():
                protos[dom, cls] = features[chosen].mean(0)
                present[dom, cls] = True
    return protos, present


def prototype_scores(
    features: torch.Tensor,
    labels: torch.Tensor,
    domains: torch.Tensor,
    num_domains: int,
    num_labels: int,
    alpha: float,
) -> torch.Tensor:
    """t_i of eq. 1 for every example. The other domains' term averages over those that
    have a class-y_i prototype, which is zeta * sum when all K - 1 have one."""
    protos, present = class_prototypes(features, labels, domains, num_domains, num_labels)
    # cos(p_{y_i}^(k), h_i) for every domain k: (N, K)
    per_domain = F.cosine_similarity(protos[:, labels].transpose(0, 1), features[:, None], dim=-1)
    available = present[:, labels].T.to(features.dtype)  # (N, K)
    own = F.one_hot(domains, num_domains).to(features.dtype)
    others = available * (1 - own)
    own_cos = (per_domain * own).sum(1)
    other_cos = (per_domain * others).sum(1) / others.sum(1).clamp(min=1)
    return alpha * own_cos + (1 - alpha) * other_cos


def expertise_weights(
    scores: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """lambda_i of sec. 3.3 from t_i and the teacher's probability of the gold label."""
    p_gold = teacher_logits.softmax(-1).gather(1, labels[:, None]).squeeze(1)
    return (1 + scores) / (torch.exp((1 - p_gold) ** 2) + 1)
