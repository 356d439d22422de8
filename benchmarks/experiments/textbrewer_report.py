"""The Markdown report of `make bench-textbrewer` (`textbrewer_compare`): the results file is
this text, so it carries the setup, the objective check and TextBrewer's workarounds."""

from __future__ import annotations

from typing import Any

from compressor import markdown

TOOLS = ("ours", "ours_cached", "ours_bf16", "ours_regime", "textbrewer")
"""The contenders, in the order a round runs them (every other round reversed)."""


def render_markdown(report: dict[str, Any]) -> str:
    """The whole report, setup, objective check and workarounds included: the results file is
    this text, so it stands alone."""
    s, c, ratio = report["setup"], report["objective_check"], report["ratio_ours_over_textbrewer"]
    cached = report["ratio_cached_over_textbrewer"]
    filled = report["ratio_cached_with_fill_over_textbrewer"]
    bf16, regime = report["ratio_bf16_over_textbrewer"], report["ratio_regime_over_textbrewer"]
    head = ["round", "order", "ours samples/s", "ours, cached logits", "ours, cached, bf16",
            "ours, regime", "TextBrewer samples/s", "ours / TextBrewer", "cached / TextBrewer",
            "cached, fill included", "bf16 / TextBrewer", "regime / TextBrewer",
            "ours dev acc", "cached dev acc", "bf16 dev acc", "regime dev acc",
            "TextBrewer dev acc"]  # fmt: skip
    rows = [[r["round"], " → ".join(r["order"]),
             *(f"{r[tool]['samples_per_s']:.2f}" for tool in TOOLS),
             *(f"{r[key]:.3f}" for key in ("ratio", "ratio_cached", "ratio_cached_with_fill",
                                           "ratio_bf16", "ratio_regime")),
             *(f"{r[tool]['dev_accuracy'] * 100:.2f}%" for tool in TOOLS)]
            for r in report["rounds"]]  # fmt: skip
    lines = [
        "# Training throughput: ours vs TextBrewer",
        "",
        f"{s['loss']}, {s['student_layers']}-layer student of {s['teacher']}, {s['steps']} "
        f"steps x batch {s['batch_size']}, lr {s['lr']}, seed {s['seed']}, "
        f"{s['torch_threads']} torch threads; "
        + ", ".join(f"{k} {v}" for k, v in s["versions"].items())
        + ".",
        "",
        f"Throughput: {s['throughput']}.",
        "",
        markdown.table(head, rows).rstrip("\n"),
        "",
        f"**ours / TextBrewer: {ratio['median']:.3f} median (min {ratio['min']:.3f}, "
        f"max {ratio['max']:.3f}, {ratio['n']} rounds); with the teacher's logits cached: "
        f"{cached['median']:.3f} (min {cached['min']:.3f}, max {cached['max']:.3f}), "
        f"{filled['median']:.3f} counting the one pass that fills the cache.** The fill is a "
        "teacher pass over every training example once: over one epoch, as here, it costs what "
        "the loop saves; every further epoch, stage or run on the same examples reads it free. "
        "Our loop steps a fused AdamW (one kernel for every weight, the same update); "
        "TextBrewer's is torch's default AdamW, as its examples build it.",
        "",
        f"**Cached logits in bfloat16 autocast (the same recipe, batches and weights): "
        f"{bf16['median']:.3f} (min {bf16['min']:.3f}, max {bf16['max']:.3f}).** Its dev "
        "accuracy is in the table; how much bfloat16 gains depends on the CPU's bfloat16 "
        "instructions (see the machine above).",
        "",
        f"**With the retention regime's speed options as well (cached logits, word embeddings "
        f"frozen, batches grouped by length): {regime['median']:.3f} (min {regime['min']:.3f}, "
        f"max {regime['max']:.3f}).** That run trains fewer weights on other batches: it is "
        "what those options buy a user, not a faster loop; TextBrewer's user can feed it cached "
        "teacher outputs (0.2.1) and leave the embeddings out of its optimizer by hand.",
        "",
        f"Same objective, checked on the first batch with identical students (eval mode): "
        f"ours {c['ours_loss']:.6f}, TextBrewer {c['textbrewer_loss']:.6f} = ours + "
        f"alpha T^2 H(p_T) ({c['teacher_entropy_term']:.6f}); gap {c['loss_gap']:.2e}, "
        f"max gradient gap {c['max_grad_gap']:.2e} (tolerance {c['tolerance']:.0e}); "
        f"all {c['batches_identical']} batches identical in both tools.",
        "",
        "TextBrewer workarounds: " + "; ".join(report["textbrewer_workarounds"]) + ".",
    ]
    return "\n".join(lines) + "\n"
