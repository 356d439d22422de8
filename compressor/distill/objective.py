"""The distillation objective of a recipe: Hinton's soft/hard mix plus intermediate terms.

    L = w_pred * (alpha * s(p) * T^2 KL(p_T^T || p_S^T) + (1 - alpha) * h(p) * CE(y, p_S))
        + sum_i w_i(p) * L_i

p is training progress, s / h / w_i the recipe's weight schedules and T possibly scheduled
too. For masked LMs (task-agnostic distillation) the prediction terms are taken over the
masked tokens: KL on the vocabulary and the masked-LM loss as the hard term. Teachers run
under no_grad and are asked only for what the terms need (hidden states, attentions,
hooked Q/K/V). Every model, teacher or student, is run and read through the adaptor of its
student kind (`compressor.students`), which also feeds it only the inputs its forward
accepts, so a DistilBERT student can learn from a BERT teacher (no token_type_ids) and a
student that is no HF transformer needs no change here.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from transformers import PreTrainedModel

from compressor.distill.losses import INTERMEDIATE_LOSSES, ModelView, hard_ce, soft_kd
from compressor.distill.mapping import hidden_pairs
from compressor.distill.schedules import temperature_at, weight_factor
from compressor.distill.teacher_states import STATE_INDEX, TeacherStates
from compressor.errors import UserError
from compressor.recipe import DistillConfig, IntermediateLoss
from compressor.students import Features, StudentKind, Wants, kind_of
from compressor.tasks import IGNORED

CACHED_LOGITS = "teacher_logits"
"""The batch field that carries the teacher's precomputed logits (`compressor.teacher_outputs`);
with it the teacher does not run."""


def check_servable(kind: StudentKind, cfg: DistillConfig) -> None:
    """Refuse, before any training, a term that reads what a student of `kind` cannot give
    (a BiLSTM has no attentions, Q/K/V or per-layer hidden states to match the teacher's)."""
    has = kind.provides
    for spec in cfg.intermediate:
        loss = INTERMEDIATE_LOSSES[spec.name]
        lacking = [
            what
            for what, wanted, given in (
                ("hidden states", loss.needs_hidden_states, has.hidden_states),
                ("attentions", loss.needs_attentions, has.attentions),
                ("Q/K/V", loss.needs_qkv, has.qkv),
            )
            if wanted and not given
        ]
        if spec.weight > 0 and lacking:
            raise UserError(
                f"loss {spec.name} reads {' and '.join(lacking)}, which a {kind.name} student "
                "does not have — drop it from distill.intermediate (logits_mse reads logits "
                "only), or use student.kind transformer"
            )


class DistillObjective:
    """Callable `(student, batch, progress) -> (loss, parts)` for the trainer."""

    needs_hidden_states = False  # a subclass reading hidden states beyond the terms' own

    def __init__(
        self,
        teacher: PreTrainedModel,
        student: nn.Module,
        cfg: DistillConfig,
        extra_teachers: list[tuple[PreTrainedModel, float]] | None = None,
    ):
        self.teacher = teacher
        self.cfg = cfg
        self.extra_teachers = extra_teachers or []
        self._kinds: dict[int, StudentKind] = {}
        kind = self._kind(student)
        check_servable(kind, cfg)
        if self.needs_hidden_states and not kind.provides.hidden_states:
            raise UserError(
                f"{type(self).__name__} reads hidden states, which a {kind.name} student does "
                "not have — use student.kind transformer"
            )
        s_dims, t_dims = kind.dims(student), self._kind(teacher).dims(teacher)
        self.states: TeacherStates | None = None
        self.terms: list[tuple[str, float, str, nn.Module]] = [
            (spec.name, spec.weight, spec.schedule, self._term(spec, s_dims, t_dims))
            for spec in cfg.intermediate
            if spec.weight > 0
        ]

    def _kind(self, model: nn.Module) -> StudentKind:
        """A model's kind, looked up once: every step runs each model through it."""
        if id(model) not in self._kinds:
            self._kinds[id(model)] = kind_of(model)
        return self._kinds[id(model)]

    @staticmethod
    def _term(
        spec: IntermediateLoss, s_dims: tuple[int, int], t_dims: tuple[int, int]
    ) -> nn.Module:
        """The term's module over its layer pairs, sized by each model's (layers, width); a
        recipe that names no layer_map gets the map of the loss's paper (`default_map`)."""
        loss = INTERMEDIATE_LOSSES[spec.name]
        layer_map = loss.default_map if spec.layer_map is None else spec.layer_map
        pairs = hidden_pairs(layer_map, s_dims[0], t_dims[0])
        return loss(pairs, s_dims[1], t_dims[1])

    @property
    def modules(self) -> list[nn.Module]:
        """Trainable parts of the objective (projections W_h), optimised with the student."""
        return [module for *_, module in self.terms]

    @property
    def reads_teacher_internals(self) -> bool:
        """Whether a term reads more of the teacher than its logits: then the teacher runs on
        every batch, and cached logits cannot stand in for it."""
        return self.needs_hidden_states or any(
            m.needs_hidden_states or m.needs_attentions or m.needs_qkv for *_, m in self.terms
        )

    @property
    def teacher_layers(self) -> tuple[int, ...] | None:
        """The teacher layers the terms read (0 = embeddings) when hidden states are all
        they read of it, so that a store of those can stand in for its pass; else None."""
        if self.needs_hidden_states or any(m.needs_attentions or m.needs_qkv
                                           for *_, m in self.terms):  # fmt: skip
            return None
        layers = {t for *_, m in self.terms if m.needs_hidden_states for _, t in m.pairs}
        return tuple(sorted(layers)) or None

    def use_states(self, states: TeacherStates) -> None:
        """Read the teacher from `states` on batches that carry `STATE_INDEX`."""
        if states.layers != self.teacher_layers:
            raise RuntimeError(f"store of layers {states.layers}, terms read {self.teacher_layers}")
        self.states = states

    def _stored(self, index: torch.Tensor, attention_mask: torch.Tensor) -> Features:
        if self.states is None:
            raise RuntimeError("a batch carries teacher-state rows but no store is in use")
        device = attention_mask.device
        hidden = self.states.hidden_states(index.cpu(), attention_mask.cpu())
        return Features(
            logits=self.states.batch_logits(index.cpu(), attention_mask.cpu()).to(device),
            hidden_states=tuple(None if h is None else h.to(device) for h in hidden),
        )

    @property
    def frozen(self) -> list[nn.Module]:
        """Every teacher: moved to the device by the trainer, never optimised."""
        return [self.teacher, *(m for m, _ in self.extra_teachers)]

    def _view(self, model: nn.Module, inputs: dict[str, torch.Tensor], qkv: bool) -> ModelView:
        wants = Wants(
            hidden_states=any(m.needs_hidden_states for *_, m in self.terms)
            or self.needs_hidden_states,
            attentions=any(m.needs_attentions for *_, m in self.terms),
            qkv=qkv,
        )
        return self._kind(model).adapt(model, inputs, wants)

    def _prediction(
        self,
        s_logits: torch.Tensor,
        t_logits: torch.Tensor,
        extra_logits: list[torch.Tensor],
        labels: torch.Tensor,
        progress: float,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Hinton's term. Skipped entirely at prediction_weight 0, so that the classifier
        gets no gradient (and no weight decay) in TinyBERT's intermediate stage."""
        cfg = self.cfg
        temperature = temperature_at(cfg, progress, s_logits, t_logits)
        weights = [cfg.teacher_weight, *(w for _, w in self.extra_teachers)]
        kd = soft_kd(s_logits, [t_logits, *extra_logits], temperature, weights)
        ce = hard_ce(s_logits, labels)
        soft_w = cfg.alpha * weight_factor(cfg.soft_schedule, progress)
        hard_w = (1 - cfg.alpha) * weight_factor(cfg.hard_schedule, progress)
        loss = cfg.prediction_weight * (soft_w * kd + hard_w * ce)
        return loss, {"soft_kd": kd.item(), "hard_ce": ce.item()}

    def __call__(
        self, student: nn.Module, batch: dict[str, torch.Tensor], progress: float = 0.0
    ) -> tuple[torch.Tensor, dict[str, float]]:
        labels = batch["labels"]
        cached, stored = batch.get(CACHED_LOGITS), batch.get(STATE_INDEX)
        inputs = {k: v for k, v in batch.items()
                  if k not in ("labels", CACHED_LOGITS, STATE_INDEX)}  # fmt: skip
        qkv = any(m.needs_qkv for *_, m in self.terms)
        if cached is not None and self.reads_teacher_internals:
            raise RuntimeError(
                "cached teacher logits given to terms that read the teacher's layers"
            )
        with torch.no_grad():
            if stored is not None:
                t_view = self._stored(stored, inputs["attention_mask"])
            elif cached is not None:
                t_view = Features(logits=cached)
            else:
                t_view = self._view(self.teacher, inputs, qkv)
            extra_logits = [self._view(m, inputs, False).logits for m, _ in self.extra_teachers]
        s_view = self._view(student, inputs, qkv)
        s_logits, t_logits = s_view.logits, t_view.logits
        if s_logits.dim() == 3:  # masked LM, tags: terms on logits read labelled tokens only
            masked = labels != IGNORED
            s_logits, labels = s_logits[masked], labels[masked]
            if t_logits.dim() == 3:  # cached logits come as those positions' rows already
                t_logits = t_logits[masked]
            if t_logits.shape != s_logits.shape:
                raise RuntimeError(f"{len(t_logits)} cached rows for {len(s_logits)} positions")
            extra_logits = [logits[masked] for logits in extra_logits]
            s_view, t_view = replace(s_view, logits=s_logits), replace(t_view, logits=t_logits)
        loss = s_logits.new_zeros(())
        parts: dict[str, float] = {}
        if self.cfg.prediction_weight > 0:
            loss, parts = self._prediction(s_logits, t_logits, extra_logits, labels, progress)
        for name, weight, schedule, module in self.terms:
            value = module(s_view, t_view, inputs["attention_mask"])
            loss = loss + weight * weight_factor(schedule, progress) * value
            parts[name] = value.item()
        with torch.no_grad():  # the prediction gap at T = 1, traced while pruning
            parts["prediction_kl"] = soft_kd(s_logits, t_logits, 1.0).item()
        return loss, parts
