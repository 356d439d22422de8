"""Layer mappings between a student with M layers and a teacher with N.

Indices are into `hidden_states` tuples: 0 is the embedding output and m is the output of
layer m, as in TinyBERT's notation where student layer 0 maps to teacher layer 0. Which
teacher layers initialise a cut student is the student kind's business
(`compressor.students.init_layers`), on the same g(m).
"""

from __future__ import annotations

from typing import Literal

from compressor.errors import UserError
from compressor.students import uniform_layers

LayerMap = Literal["uniform", "last", "skip", "pkd_last"] | list[tuple[int, int]]


def _pkd_pairs(spec: str, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """Patient KD (Sun et al., 2019), sec. 3.2: student layers 1..M-1 learn from teacher
    layers I_pt, every k = N/M-th for PKD-Skip (BERT6 of BERT12: 2, 4, 6, 8, 10) or the M-1
    below the top for PKD-Last (7..11). The last student layer is left out: the paper covers
    it with the prediction loss, which reads the same [CLS] vector. When M does not divide N,
    `skip` takes TinyBERT's rounding m * N // M.
    """
    if student_layers < 2:
        raise UserError(
            f"layer_map {spec!r} pairs student layers 1..M-1 and a {student_layers}-layer "
            "student has none below its top — use 'last' or explicit pairs"
        )
    if spec == "skip":
        return [(m, m * teacher_layers // student_layers) for m in range(1, student_layers)]
    return [(m, teacher_layers - student_layers + m) for m in range(1, student_layers)]


def hidden_pairs(spec: LayerMap, student_layers: int, teacher_layers: int) -> list[tuple[int, int]]:
    """(student, teacher) hidden_states index pairs that an intermediate loss compares."""
    if spec == "uniform":
        return [(0, 0)] + [
            (m + 1, t + 1) for m, t in enumerate(uniform_layers(student_layers, teacher_layers))
        ]
    if spec == "last":
        return [(student_layers, teacher_layers)]
    if spec in ("skip", "pkd_last"):
        return _pkd_pairs(spec, student_layers, teacher_layers)
    pairs = [(int(s), int(t)) for s, t in spec]
    for s, t in pairs:
        if not (0 <= s <= student_layers and 0 <= t <= teacher_layers):
            raise UserError(
                f"layer_map pair ({s}, {t}) is out of range: student 0..{student_layers}, "
                f"teacher 0..{teacher_layers} (0 = embeddings) — fix the pair"
            )
    return pairs
