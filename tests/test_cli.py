"""The CLI as a user runs it: one clear line and exit code 2 for every bad input."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SST2

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "200"}


def cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "compressor", *args],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=cwd,
        timeout=300,
    )


def assert_user_error(result: subprocess.CompletedProcess, match: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert match in " ".join(result.stderr.split()), result.stderr


def test_help_documents_every_command() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for command in ("finetune", "compress", "export", "quantize", "benchmark", "report"):
        assert command in result.stdout
    options = cli("compress", "--help").stdout
    for flag in ("--teacher", "--data", "--label-column", "--resume", "--overwrite", "--dry-run"):
        assert flag in options


def test_recipe_show_prints_the_effective_recipe(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("student:\n  layers: 2\n")
    result = cli("recipe", "show", str(path))
    assert result.returncode == 0
    assert "layers: 2" in result.stdout and "temperature: 2.0" in result.stdout


def test_bad_recipe_key(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("student:\n  layer: 2\n")
    assert_user_error(cli("recipe", "show", str(path)), "student.layer: unknown key")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data")
    lines = (SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "train.tsv").write_text("\n".join(lines[:65]) + "\n", encoding="utf-8")
    (folder / "dev.tsv").write_text("\n".join([lines[0], *lines[65:97]]) + "\n", encoding="utf-8")
    return folder


def test_missing_data_path(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    result = cli(
        "compress",
        "--teacher",
        str(tiny_teacher_dir),
        "--out",
        str(tmp_path / "o"),
        "--data",
        str(tmp_path / "nowhere"),
    )
    assert_user_error(result, "does not exist")


def test_missing_label_column(tiny_teacher_dir: Path, small_data: Path, tmp_path: Path) -> None:
    result = cli(
        "compress",
        "--teacher",
        str(tiny_teacher_dir),
        "--out",
        str(tmp_path / "o"),
        "--data",
        str(small_data),
        "--label-column",
        "stars",
        "--dry-run",
    )
    assert_user_error(result, "no column 'stars'")


def test_labels_outside_the_teachers_classes(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    rows = ["sentence\tlabel"] + [f"text number {i}\t{i % 3}" for i in range(30)]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    result = cli(
        "compress",
        "--teacher",
        str(tiny_teacher_dir),
        "--out",
        str(tmp_path / "o"),
        "--data",
        str(tmp_path / "train.tsv"),
        "--dry-run",
    )
    assert_user_error(result, "3 label values but the teacher has 2 classes")


def test_empty_data_file(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("")
    result = cli(
        "compress",
        "--teacher",
        str(tiny_teacher_dir),
        "--out",
        str(tmp_path / "o"),
        "--data",
        str(tmp_path / "train.tsv"),
    )
    assert_user_error(result, "is empty")


def test_teacher_without_weights(tiny_teacher_dir: Path, small_data: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    (teacher / "model.safetensors").unlink()
    result = cli(
        "compress",
        "--teacher",
        str(teacher),
        "--out",
        str(tmp_path / "o"),
        "--data",
        str(small_data),
    )
    assert_user_error(result, "no weights")


def test_output_folder_of_another_run_is_refused(
    tiny_teacher_dir: Path, small_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "state.json").write_text('{"kind": "compress", "stages": {}}')
    result = cli(
        "compress", "--teacher", str(tiny_teacher_dir), "--out", str(out), "--data", str(small_data)
    )
    assert_user_error(result, "--overwrite")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    result = cli(
        "compress",
        "--teacher",
        str(tiny_teacher_dir),
        "--out",
        str(tmp_path / "mine"),
        "--data",
        str(small_data),
        "--overwrite",
    )
    assert_user_error(result, "not a compressor run")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_dry_run_prints_the_plan(tiny_teacher_dir: Path, small_data: Path, tmp_path: Path) -> None:
    result = cli(
        "compress",
        "--teacher",
        str(tiny_teacher_dir),
        "--out",
        str(tmp_path / "o"),
        "--data",
        str(small_data),
        "--layers",
        "2",
        "--steps",
        "7",
        "--dry-run",
    )
    assert result.returncode == 0, result.stderr
    assert "64 train / 32 dev" in result.stdout
    assert "2 layers from teacher layers uniform" in result.stdout
    assert "7 steps" in result.stdout
    assert not (tmp_path / "o").exists()
