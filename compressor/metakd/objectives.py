"""The two losses of Meta-KD (Pan et al., ACL 2021): the meta-teacher's and the student's.

Meta-teacher (sec. 3.2, eqs. 2-3): prototype-weighted cross-entropy over all K domains plus
gamma1 times a domain-adversarial term. The domain-aware representation of an example of
domain k is h_d(x) = tanh(W (h(x) + E_D(k)) + b), E_D a learned domain embedding, and a
domain classifier reads it. The paper writes the term as the log-likelihood of the true
domain, minimised so that the teacher's representation stops telling domains apart. We
train it as a gradient-reversal game (Ganin & Lempitsky, 2015) instead: the domain
classifier and E_D minimise the domain cross-entropy, the encoder receives its gradient
reversed. Both push the encoder toward confusion; the paper's form is unbounded below (the
classifier can drive the true domain's probability to 0), the reversed one keeps a real
adversary. EasyNLP's code uses a third variant, cross-entropy against shuffled domain ids.

Meta-distillation (sec. 3.3): per example, the registered intermediate losses of the
recipe (embeddings / hidden states / attentions), the prediction loss, and gamma2 times the
transferable-knowledge term MSE(h_d^S W, h_d^T) on the domain-aware representations, all
weighted by the domain-expertise weight lambda_i (`prototypes.expertise_weights`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from compressor.distill.capture import LayerQKV
from compressor.distill.losses import ModelView, hard_ce, soft_kd
from compressor.distill.objective import DistillObjective
from compressor.distill.schedules import temperature_at, weight_factor
from compressor.metakd.prototypes import expertise_weights
from compressor.recipe import DistillConfig
from compressor.students import accepted_inputs

DOMAIN_FIELDS = ("domain_ids", "prototype_score")


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by -1."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return -grad


def reverse_gradient(x: torch.Tensor) -> torch.Tensor:
    return _ReverseGradient.apply(x)


class DomainHead(nn.Module):
    """E_D, W, b and the domain classifier of eq. 3: small, saved beside the HF model."""

    def __init__(self, hidden: int, num_domains: int):
        super().__init__()
        self.embedding = nn.Embedding(num_domains, hidden)
        self.dense = nn.Linear(hidden, hidden)
        self.classifier = nn.Linear(hidden, num_domains)

    def domain_aware(self, pooled: torch.Tensor, domain_ids: torch.Tensor) -> torch.Tensor:
        """h_d(x) = tanh(W (h(x) + E_D(k)) + b)."""
        return torch.tanh(self.dense(pooled + self.embedding(domain_ids)))

    def forward(self, pooled: torch.Tensor, domain_ids: torch.Tensor) -> torch.Tensor:
        """Domain logits of each example."""
        return self.classifier(self.domain_aware(pooled, domain_ids))


def pooled_last(hidden_states: tuple[torch.Tensor, ...], mask: torch.Tensor) -> torch.Tensor:
    """h(x): the last layer averaged over real tokens (as `prototypes.mean_pooled`)."""
    m = mask.unsqueeze(-1).to(hidden_states[-1].dtype)
    return (hidden_states[-1] * m).sum(1) / m.sum(1).clamp(min=1)


def domain_adversarial_ce(
    head: DomainHead, pooled: torch.Tensor, domain_ids: torch.Tensor
) -> torch.Tensor:
    """The domain cross-entropy: minimised by the head, maximised by whatever produced
    `pooled` (its gradient arrives reversed)."""
    return F.cross_entropy(head(reverse_gradient(pooled), domain_ids), domain_ids)


class MetaTeacherObjective:
    """Eq. 2-3: mean_i t_i CE(y_i, f(x_i)) + gamma1 * domain-adversarial term. The batch's
    `prototype_score` is taken as given: `run.relative_weights` has already clipped it at 0
    (an example unlike every prototype is not learned from, rather than unlearned) and
    scaled it to mean 1."""

    def __init__(self, head: DomainHead, gamma1: float):
        self.head = head
        self.gamma1 = gamma1

    def __call__(
        self, model: PreTrainedModel, batch: dict[str, torch.Tensor], progress: float = 0.0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        labels, domain_ids = batch["labels"], batch["domain_ids"]
        weights = batch["prototype_score"]
        accepted = accepted_inputs(model)
        out = model(**{k: v for k, v in batch.items() if k in accepted and k != "labels"},
                    output_hidden_states=True)  # fmt: skip
        task = (weights * F.cross_entropy(out.logits, labels, reduction="none")).mean()
        loss = task
        parts = {"weighted_ce": task.item()}
        if self.gamma1 > 0:
            pooled = pooled_last(out.hidden_states, batch["attention_mask"])
            adversarial = domain_adversarial_ce(self.head, pooled, domain_ids)
            loss = loss + self.gamma1 * adversarial
            parts["domain_ce"] = adversarial.item()
        return loss, parts


def _example(view: ModelView, i: int) -> ModelView:
    """Example i of a batch's view, batch dimension kept."""
    cut = slice(i, i + 1)
    return ModelView(
        view.logits[cut],
        None if view.hidden_states is None else tuple(h[cut] for h in view.hidden_states),
        None if view.attentions is None else tuple(a[cut] for a in view.attentions),
        None if view.qkv is None else [LayerQKV(x.q[cut], x.k[cut], x.v[cut]) for x in view.qkv],
    )


class MetaDistillObjective(DistillObjective):
    """The recipe's distillation terms, taken per example and weighted by lambda_i, plus
    gamma2 * transferable knowledge. The registered losses average over a batch, so each is
    evaluated on one example at a time: the same code as plain distillation, and the
    weighted mean the paper asks for."""

    needs_hidden_states = True

    def __init__(
        self,
        teacher: PreTrainedModel,
        student: PreTrainedModel,
        cfg: DistillConfig,
        teacher_head: DomainHead,
        num_domains: int,
        gamma2: float,
    ):
        super().__init__(teacher, student, cfg)
        s_dim, t_dim = student.config.hidden_size, teacher.config.hidden_size
        self.teacher_head = teacher_head.requires_grad_(False)
        self.student_head = DomainHead(s_dim, num_domains)
        self.tk_proj = nn.Identity() if s_dim == t_dim else nn.Linear(s_dim, t_dim)
        self.gamma2 = gamma2

    @property
    def modules(self) -> list[nn.Module]:
        return [*super().modules, self.student_head, self.tk_proj]

    @property
    def frozen(self) -> list[nn.Module]:
        return [*super().frozen, self.teacher_head]

    def __call__(
        self, student: PreTrainedModel, batch: dict[str, torch.Tensor], progress: float = 0.0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        cfg = self.cfg
        labels, domain_ids, scores = (batch[k] for k in ("labels", *DOMAIN_FIELDS))
        inputs = {k: v for k, v in batch.items() if k not in ("labels", *DOMAIN_FIELDS)}
        mask = inputs["attention_mask"]
        qkv = any(m.needs_qkv for *_, m in self.terms)
        with torch.no_grad():
            t_view = self._view(self.teacher, inputs, qkv)
            lam = expertise_weights(scores, t_view.logits, labels)
            t_domain = self.teacher_head.domain_aware(
                pooled_last(t_view.hidden_states, mask), domain_ids
            )
        s_view = self._view(student, inputs, qkv)
        s_domain = self.student_head.domain_aware(
            pooled_last(s_view.hidden_states, mask), domain_ids
        )
        transferable = (self.tk_proj(s_domain) - t_domain).pow(2).mean(-1)  # (batch,)
        temperature = temperature_at(cfg, progress, s_view.logits, t_view.logits)
        soft_w = cfg.alpha * weight_factor(cfg.soft_schedule, progress)
        hard_w = (1 - cfg.alpha) * weight_factor(cfg.hard_schedule, progress)
        sums: dict[str, float] = {}
        per_example = []
        for i in range(len(labels)):
            s_i, t_i = _example(s_view, i), _example(t_view, i)
            total = self.gamma2 * transferable[i]
            if cfg.prediction_weight > 0:
                temp = temperature[i : i + 1] if torch.is_tensor(temperature) else temperature
                kd = soft_kd(s_i.logits, t_i.logits, temp)
                ce = hard_ce(s_i.logits, labels[i : i + 1])
                total = total + cfg.prediction_weight * (soft_w * kd + hard_w * ce)
                sums["soft_kd"] = sums.get("soft_kd", 0.0) + kd.item()
                sums["hard_ce"] = sums.get("hard_ce", 0.0) + ce.item()
            for name, weight, schedule, module in self.terms:
                value = module(s_i, t_i, mask[i : i + 1])
                total = total + weight * weight_factor(schedule, progress) * value
                sums[name] = sums.get(name, 0.0) + value.item()
            per_example.append(total)
        loss = (lam * torch.stack(per_example)).mean()
        parts = {name: value / len(labels) for name, value in sums.items()}
        parts["transferable"] = transferable.mean().item()
        parts["expertise_weight"] = lam.mean().item()
        return loss, parts
