"""What the tests of the non-transformer student kinds (bilstm, cnn) share: the teacher they
are built from, the sentences they read, and the checks every such kind must pass the same
way (training on logits, loading without this project, the int8 gate)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from compressor.data import Split
from compressor.distill.objective import DistillObjective
from compressor.models import load_classifier, load_tokenizer
from compressor.recipe import DistillConfig, IntermediateLoss, QuantizeConfig, StudentConfig
from compressor.students import load_trained, make_student
from exporters.artifacts import quantize_checked
from tests.conftest import save_variant, sst2_rows

ROWS = sst2_rows("dev", limit=48)
TEXTS = [text for text, _ in ROWS]  # 48 real sentences, 4 to 50 word pieces
LABELS = [label for _, label in ROWS]
RECIPES = Path(__file__).parents[1] / "recipes"
Teacher = tuple[PreTrainedModel, PreTrainedTokenizerBase]

CLEAN_LOAD = """
import json, sys
sys.modules["compressor"] = None  # importing this project now fails: the folder must suffice
import torch
import transformers
batch = {k: torch.tensor(v) for k, v in json.loads(sys.argv[2]).items()}
auto = getattr(transformers, sys.argv[3])
model = auto.from_pretrained(sys.argv[1], trust_remote_code=True)
with torch.no_grad():
    logits = model.eval()(**batch).logits
print(json.dumps({"logits": logits.tolist(), "module": type(model).__module__,
                  "class": type(model).__name__, "config": model.config.to_dict()}))
"""


def spread_teacher(tiny_teacher_dir: Path, folder: Path) -> Teacher:
    """The tiny teacher with weights at std 0.3: the student's embeddings are the teacher's,
    and default-init ones (std 0.02) would give near-equal logits that hide a wrong pooling or
    a lost input."""
    return load_classifier(save_variant(tiny_teacher_dir, folder, seed=3, initializer_range=0.3))


def logits_of(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(**batch).logits


def logits_mse_training(teacher: Teacher, cfg: StudentConfig) -> tuple[list[float], set[str]]:
    """30 Adam steps of a fresh student on the teacher's logits (Tang's MSE alone) over 16
    sentences: the losses and the loss terms the objective reported."""
    model, tokenizer = teacher
    torch.manual_seed(0)
    student, _ = make_student(model, tokenizer, cfg, TEXTS)
    distill = DistillConfig(
        prediction_weight=0.0, intermediate=[IntermediateLoss(name="logits_mse")]
    )
    objective = DistillObjective(model, student, distill)
    batch = {**tokenizer(TEXTS[:16], padding=True, return_tensors="pt"),
             "labels": torch.tensor(LABELS[:16])}  # fmt: skip
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss, parts = objective(student.train(), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, set(parts)


def run_in_clean_process(
    folder: Path, batch: dict[str, torch.Tensor], tmp_path: Path,
    auto_class: str = "AutoModelForSequenceClassification",
) -> dict[str, Any]:  # fmt: skip
    """The folder loaded by stock transformers' `auto_class` in a process where this project
    cannot be imported, run on `batch`: what it printed (logits, model module and class,
    config)."""
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", CLEAN_LOAD, str(folder),
         json.dumps({k: v.tolist() for k, v in batch.items()}), auto_class],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.splitlines()[-1])


def load_in_clean_process(student_dir: Path, tmp_path: Path) -> tuple[dict[str, Any], torch.Tensor]:
    """`run_in_clean_process` on 8 sentences, and the logits the same folder gives here."""
    batch = load_tokenizer(student_dir)(TEXTS[:8], padding=True, return_tensors="pt")
    here = logits_of(load_trained(student_dir), batch)
    return run_in_clean_process(student_dir, batch, tmp_path), here


def dynamic_int8(student_dir: Path, onnx_path: Path) -> dict[str, Any]:
    """The student's dynamic int8 file, judged against its PyTorch folder on the 48 sentences."""
    return quantize_checked(
        onnx_path, student_dir, Split(TEXTS, LABELS), cfg=QuantizeConfig(mode="dynamic-int8"),
        calibration=None, max_length=64, recipe_hash="test",
    )  # fmt: skip
