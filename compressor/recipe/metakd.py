"""The Meta-KD section of the recipe."""

from __future__ import annotations

from pydantic import Field

from compressor.recipe._base import Strict


class MetaKDConfig(Strict):
    """Meta-KD (Pan et al., ACL 2021): a meta-teacher trained on K domains, distilled into
    one student per target domain. The meta-teacher trains with `finetune`, the student
    with `student`, `distill` and `train`."""

    domain_column: str | None = Field(
        None,
        description="Column naming each example's domain when data.source is one file; a "
        "folder needs none (each file is a domain, named by its stem).",
    )
    dev_fraction: float = Field(
        0.2, gt=0, lt=1, description="Each domain's share held out as dev (seeded split)."
    )
    target_domain: str | None = Field(None, description="Domain the student is distilled for.")
    fraction: float = Field(
        1.0, gt=0, le=1, description="Share of the target domain's training part used (few-shot)."
    )
    alpha: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Eq. 1: weight of the own domain's class prototype in the prototype score; "
        "1 - alpha is shared by the other domains' prototypes.",
    )
    gamma1: float = Field(0.5, ge=0, description="Weight of the domain-adversarial term.")
    gamma2: float = Field(
        0.5, ge=0, description="Weight of the transferable-knowledge term in meta-distillation."
    )
