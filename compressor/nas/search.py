"""AdaBERT's search loop (Chen et al., IJCAI 2020, sec. 3): the network's weights and its
architecture are trained in alternation on two halves of the search examples (first-order
DARTS), on

    L = (1 - gamma) * L_CE + gamma * L_KD + beta * L_E

L_CE is the task loss of the sampled depth's prediction; L_KD the attentively weighted KD of
every cell's prediction towards its teacher layer's probe; L_E the expected efficiency cost
(`SuperNet.efficiency`). The Gumbel temperature decays by 0.98 a epoch, as in the authors'
PaddleSlim code.

Where this differs from the paper, and why:

- The architecture is one cell stacked K times (the PaddleSlim code shares one set of
  architecture weights across layers too); the cell's output is the mean of its nodes, not
  their sum, and operations have no batch norm (see `compressor.students.modeling_cnn`).
- KD is Hinton's T^2-scaled KL at `temperature` on both sides; PaddleSlim softens only the
  student's logits. Cell i learns teacher layer ceil(i * M / K_max)'s probe.
- The derived cell keeps every edge whose strongest operation is not `zero` (DARTS keeps the
  two strongest edges per node; AdaBERT's published cells keep more).
- The search runs on `max_examples` of the task's training examples, not on the
  augmented set: the teacher's hidden states of every search example are held in memory.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.data import Split
from compressor.distill.losses import soft_kd
from compressor.nas.probes import attentive_weights, layer_map, layer_states, train_probes
from compressor.nas.supernet import SuperNet, op_cost
from compressor.progress import LoggedProgress, LogLine
from compressor.recipe import AdaBertConfig
from compressor.students.modeling_cnn import OPERATIONS


@dataclass
class SearchResult:
    """What the search chose and what it cost; `cells` is the student's `cells` value."""

    cells: list[list[list]]
    depth: int
    operations: list[dict[str, float]]
    depth_probabilities: list[float]
    cost: float
    probe_accuracies: list[float]
    layer_map: list[int]
    kd_weights: list[float]
    examples: int
    steps: int
    seconds: float
    history: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def architecture_cost(cells: list[list[list]], channels: int) -> float:
    """The derived network's summed operation cost, in width-7 convolutions."""
    return sum(op_cost(op, channels) for cell in cells for op, _, _ in cell)


def _batch(
    tokenizer: PreTrainedTokenizerBase, features: list[dict], idx: torch.Tensor
) -> dict[str, torch.Tensor]:
    return tokenizer.pad([features[int(k)] for k in idx], return_tensors="pt")


def adabert_search(
    teacher: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    embeddings: nn.Embedding,
    projection: nn.Conv1d,
    split: Split,
    cfg: AdaBertConfig,
    *,
    max_length: int,
) -> SearchResult:
    """Search a cell and a depth for a CNN student of `teacher` whose word embeddings and
    projection start as `embeddings` and `projection` (copied, not changed)."""
    started = time.perf_counter()
    torch.manual_seed(cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    order = torch.randperm(len(split), generator=generator)[: cfg.max_examples].tolist()
    subset = Split(
        [split.texts[k] for k in order],
        [split.labels[k] for k in order],
        None if split.pairs is None else [split.pairs[k] for k in order],
    )
    labels = torch.tensor(subset.labels)
    num_labels = teacher.config.num_labels
    with LoggedProgress() as progress:
        states = layer_states(teacher, tokenizer, subset, max_length=max_length,
                              batch_size=cfg.batch_size, progress=progress)  # fmt: skip
    probes = train_probes(states, labels, num_labels, epochs=cfg.probe_epochs, seed=cfg.seed)
    del states
    mapping = layer_map(cfg.max_cells, probes.logits.shape[1])
    kd_weights = attentive_weights(probes.losses, mapping)

    enc = tokenizer(subset.texts, subset.pairs, truncation=True, max_length=max_length)
    features = [{k: enc[k][i] for k in ("input_ids", "attention_mask")} for i in range(len(subset))]
    halves = torch.arange(len(subset)).split(math.ceil(len(subset) / 2))
    weights_half, arch_half = halves[0], halves[-1]

    net = SuperNet(copy.deepcopy(embeddings), copy.deepcopy(projection), cfg.max_cells,
                   cfg.nodes, num_labels)  # fmt: skip
    w_opt = torch.optim.Adam(net.weight_parameters(), lr=cfg.lr)
    a_opt = torch.optim.Adam(net.arch_parameters(), lr=cfg.arch_lr, betas=(0.5, 0.999),
                             weight_decay=1e-3)  # fmt: skip
    per_epoch = max(1, len(weights_half) // cfg.batch_size)
    total = max(1, math.ceil(cfg.epochs * per_epoch))

    def loss_on(idx: torch.Tensor, tau: float) -> tuple[torch.Tensor, dict[str, float]]:
        batch = _batch(tokenizer, features, idx)
        logits, per_cell = net(batch["input_ids"], batch["attention_mask"], tau, generator)
        ce = F.cross_entropy(logits, labels[idx])
        kd: torch.Tensor = sum(  # type: ignore[assignment]  # a sum of tensors
            w * soft_kd(cell_logits, probes.logits[idx, m], cfg.temperature)
            for w, cell_logits, m in zip(kd_weights, per_cell, mapping, strict=True)
        )
        efficiency = net.efficiency()
        loss = (1 - cfg.gamma) * ce + cfg.gamma * kd + cfg.beta * efficiency
        parts = {"ce": ce.item(), "kd": float(kd.detach()), "efficiency": efficiency.item()}
        return loss, parts

    history: list[dict] = []
    sums: dict[str, float] = {}
    net.train()
    with LoggedProgress() as progress:
        task = progress.add_task(
            "AdaBERT search", total=total,
            log=LogLine(unit="step", fields=("loss",), items="samples",
                        items_per_unit=2 * cfg.batch_size),
        )  # fmt: skip
        step = 0
        while step < total:
            epoch = step // per_epoch
            tau = cfg.gumbel_temperature * 0.98**epoch
            w_order = weights_half[torch.randperm(len(weights_half), generator=generator)]
            a_order = arch_half[torch.randperm(len(arch_half), generator=generator)]
            for w_idx, a_idx in zip(
                w_order.split(cfg.batch_size), a_order.split(cfg.batch_size), strict=False
            ):
                if step >= total or len(w_idx) < cfg.batch_size:
                    break
                loss, parts = loss_on(w_idx, tau)
                w_opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.weight_parameters(), 5.0)
                w_opt.step()
                a_loss, _ = loss_on(a_idx, tau)
                a_opt.zero_grad()
                a_loss.backward()
                a_opt.step()
                step += 1
                for key, value in (parts | {"loss": loss.item()}).items():
                    sums[key] = sums.get(key, 0.0) + value
                progress.update(task, completed=step, loss=f"{loss.item():.4f}")
                if step % per_epoch == 0 or step == total:
                    cell, depth = net.derive()
                    seen = step - (history[-1]["step"] if history else 0)
                    history.append({"step": step, "epoch": epoch, "tau": round(tau, 4),
                                    **{k: round(v / seen, 5) for k, v in sums.items()},
                                    "depth": depth, "cell": cell})  # fmt: skip
                    sums = {}
    cell, depth = net.derive()
    cells = [copy.deepcopy(cell) for _ in range(depth)]
    operations = [
        dict(zip(OPERATIONS, (round(p, 4) for p in row), strict=True))
        for row in F.softmax(net.alpha.detach(), -1).tolist()
    ]
    return SearchResult(
        cells=cells,
        depth=depth,
        operations=operations,
        depth_probabilities=[round(p, 4) for p in F.softmax(net.depth.detach(), -1).tolist()],
        cost=round(architecture_cost(cells, projection.out_channels), 4),
        probe_accuracies=[round(a, 4) for a in probes.accuracies],
        layer_map=mapping,
        kd_weights=[round(w, 4) for w in kd_weights.tolist()],
        examples=len(subset),
        steps=total,
        seconds=round(time.perf_counter() - started, 2),
        history=history,
    )
