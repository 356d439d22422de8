"""Which teacher layers a cut student starts from, and TinyBERT's layer map g(m) that both
this choice and the distillation losses' layer pairs (`distill/mapping.py`) are built on."""

from __future__ import annotations

from typing import Literal

from compressor.errors import UserError

LayerChoice = Literal["uniform", "first", "last"] | list[int]


def uniform_layers(student_layers: int, teacher_layers: int) -> list[int]:
    """0-based teacher layers that initialise / supervise each student layer.

    TinyBERT's g(m) = m * N / M (1-based), so a 3-layer student of a 6-layer teacher uses
    teacher layers 2, 4, 6, i.e. 0-based 1, 3, 5: the last student layer sees the last
    teacher layer.
    """
    return [((m + 1) * teacher_layers) // student_layers - 1 for m in range(student_layers)]


def init_layers(spec: LayerChoice, student_layers: int, teacher_layers: int) -> list[int]:
    """Which teacher layers the student is initialised from (DistilBERT-style copy)."""
    if student_layers > teacher_layers:
        raise UserError(
            f"student.layers={student_layers} exceeds the teacher's {teacher_layers} layers — "
            "choose fewer student layers"
        )
    if spec == "uniform":
        return uniform_layers(student_layers, teacher_layers)
    if spec == "first":
        return list(range(student_layers))
    if spec == "last":
        return list(range(teacher_layers - student_layers, teacher_layers))
    layers = list(spec)
    if len(layers) != student_layers or not all(0 <= i < teacher_layers for i in layers):
        raise UserError(
            f"student.init={layers} must list {student_layers} teacher layers in "
            f"0..{teacher_layers - 1} — fix the list or use 'uniform'"
        )
    return layers
