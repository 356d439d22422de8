"""The CLI as a user runs it: one clear line and exit code 2 for every bad input."""

import contextlib
import importlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import SST2, build_distilbert, write_sst2_subset

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "COLUMNS": "200"}


def cli_env() -> dict[str, str]:
    """The environment at call time, not at import: the session's private cache directory
    (conftest) is set after collection, and a subprocess must write there, not to ~/.cache."""
    return {**os.environ, **OFFLINE}


def cli_process(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m compressor ARGS` in a process of its own, as a user's shell runs it."""
    return subprocess.run(
        [sys.executable, "-m", "compressor", *args],
        capture_output=True,
        text=True,
        env={**cli_env(), **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def cli(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """The same command through the same entry point (`main`), in this process: a process of
    its own pays torch's and transformers' imports, about 6 s on 2 cores, on every one of the
    suite's few dozen calls. An exception that would have escaped `main` is printed as the
    process would print it, exit code 1. What a command sets for the process (environment,
    working directory, torch's thread count) is put back afterwards."""
    import torch

    from compressor.cli.app import main

    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    threads = torch.get_num_threads()
    out, err = io.StringIO(), io.StringIO()
    code = 0
    os.environ.update({**OFFLINE, **(env or {})})
    sys.argv = ["compressor", *args]
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main()
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        sys.argv = saved_argv
        torch.set_num_threads(threads)
    return subprocess.CompletedProcess(["compressor", *args], code, out.getvalue(), err.getvalue())


def compress_cli(teacher: Path, out: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    return cli(
        "compress", "--teacher", str(teacher), "--out", str(out), "--data", str(data), *extra
    )


def assert_user_error(result: subprocess.CompletedProcess, match: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert match in " ".join(result.stderr.split()), result.stderr


def test_help_documents_every_command() -> None:
    result = cli_process("--help")
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
    # in a process of its own: the real exit code and stderr of `python -m compressor`
    assert_user_error(cli_process("recipe", "show", str(path)), "student.layer: unknown key")


@pytest.fixture(scope="module")
def small_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sst2_subset(tmp_path_factory.mktemp("data"), 64, 32)


def test_missing_data_path(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    result = compress_cli(tiny_teacher_dir, tmp_path / "o", tmp_path / "nowhere")
    assert_user_error(result, "does not exist")


def test_missing_label_column(tiny_teacher_dir: Path, small_data: Path, tmp_path: Path) -> None:
    result = compress_cli(
        tiny_teacher_dir, tmp_path / "o", small_data, "--label-column", "stars", "--dry-run"
    )
    assert_user_error(result, "no column 'stars'")


def test_labels_outside_the_teachers_classes(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    rows = ["sentence\tlabel"] + [f"text number {i}\t{i % 3}" for i in range(30)]
    (tmp_path / "train.tsv").write_text("\n".join(rows) + "\n")
    result = compress_cli(tiny_teacher_dir, tmp_path / "o", tmp_path / "train.tsv", "--dry-run")
    assert_user_error(result, "3 label values but the teacher has 2 classes")


def test_empty_data_file(tiny_teacher_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "train.tsv").write_text("")
    result = compress_cli(tiny_teacher_dir, tmp_path / "o", tmp_path / "train.tsv")
    assert_user_error(result, "is empty")


def test_teacher_without_weights(tiny_teacher_dir: Path, small_data: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    (teacher / "model.safetensors").unlink()
    result = compress_cli(teacher, tmp_path / "o", small_data)
    assert_user_error(result, "no weights")


def test_output_folder_of_another_run_is_refused(
    tiny_teacher_dir: Path, small_data: Path, tmp_path: Path
) -> None:
    out = tmp_path / "o"
    out.mkdir()
    (out / "state.json").write_text('{"kind": "compress", "stages": {}}')
    result = compress_cli(tiny_teacher_dir, out, small_data)
    assert_user_error(result, "--overwrite")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("precious")
    result = compress_cli(tiny_teacher_dir, tmp_path / "mine", small_data, "--overwrite")
    assert_user_error(result, "not a compressor run")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "precious"


def test_dry_run_prints_the_plan(tiny_teacher_dir: Path, small_data: Path, tmp_path: Path) -> None:
    result = compress_cli(
        tiny_teacher_dir, tmp_path / "o", small_data, "--layers", "2", "--steps", "7", "--dry-run"
    )
    assert result.returncode == 0, result.stderr
    assert "64 train / 32 dev" in result.stdout
    assert "2 layers, cut from teacher layers uniform" in result.stdout
    plan = " ".join(result.stdout.split())
    assert "7 steps of batch 32 x 1, grouped by length, lr 0.0002" in plan  # the regime
    assert "word embeddings frozen" in plan
    assert not (tmp_path / "o").exists()


def _default_sigint() -> None:
    """A shell starts background jobs with SIGINT ignored, and the child would inherit that
    (Python then installs no KeyboardInterrupt handler): give it a terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_interrupted_compress_resumes_from_its_checkpoint(
    tiny_teacher_dir: Path, small_data: Path, tmp_path: Path
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"data:\n  source: {small_data}\n  max_length: 32\nstudent:\n  layers: 2\n"
        "train:\n  max_steps: 60\n  batch_size: 8\n  eval_every: 5\n  checkpoint_every: 5\n"
    )
    out = tmp_path / "run"
    args = ["compress", "--teacher", str(tiny_teacher_dir), "--out", str(out), "--recipe",
            str(recipe), "--skip-benchmark"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "compressor", *args], env=cli_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=_default_sigint,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not list(out.glob("training/checkpoints/step-*/trainer_state.json")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    saved = max(
        int(p.parent.name[5:]) for p in out.glob("training/checkpoints/*/trainer_state.json")
    )
    assert 0 < saved < 60

    result = cli(*args, "--resume")
    assert result.returncode == 0, result.stderr
    logged = [int(m) for m in re.findall(r"step (\d+)/60", result.stdout)]
    assert logged[0] == saved + 5  # continued after the checkpoint, not from step 0
    assert logged[-1] == 60
    state = json.loads((out / "state.json").read_text())
    assert state["stages"]["distill"]["steps"] == 60
    assert (out / "report.md").is_file()


def test_a_headerless_file_is_named_and_read_with_columns(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    """SST-2 as many tools export it: no header line. Without --columns the first example
    used to become the header ("no column 'sentence' (columns: it 's a charming ...)")."""
    rows = (SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    (tmp_path / "train.tsv").write_text("\n".join(rows[:40]) + "\n", encoding="utf-8")
    (tmp_path / "dev.tsv").write_text("\n".join(rows[40:56]) + "\n", encoding="utf-8")
    out = tmp_path / "o"
    result = compress_cli(tiny_teacher_dir, out, tmp_path, "--dry-run")
    assert_user_error(
        result,
        f"{tmp_path / 'train.tsv'} seems to have no header line (its first row reads like "
        "data: \"it 's a charming and often affecting journey .\", '1') — add a header line "
        "or pass --columns sentence,label",
    )
    result = compress_cli(tiny_teacher_dir, out, tmp_path, "--columns", "sentence,label",
                          "--dry-run")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "40 train / 16 dev examples, 2 labels" in result.stdout  # the first rows count too
    assert not out.exists()


def test_a_student_with_another_tokenizer_is_refused(
    tiny_teacher_dir: Path, small_data: Path, tmp_path: Path
) -> None:
    student = build_distilbert(tmp_path / "distil", vocab_words=300)
    result = compress_cli(
        tiny_teacher_dir, tmp_path / "o", small_data, "--student-model", str(student), "--dry-run"
    )
    assert_user_error(result, "its tokenizer does not match the teacher's")


def test_help_shows_the_defaults_written_in_option_help() -> None:
    """Typer renders help as Rich markup, where `[default: 3]` is a tag and vanished; the
    defaults that only the help text states must reach the user."""
    options = " ".join(cli("compress", "--help").stdout.split())
    for shown in ("[default: sentence]", "[default: 3]", "[default: 32]", "[default: 0.5]"):
        assert shown in options, shown


def test_student_kind_flag_picks_the_kind_and_its_losses_are_checked(
    tiny_teacher_dir: Path, small_data: Path, tmp_path: Path
) -> None:
    """The default recipe distils hidden states, which a BiLSTM does not have: refused in
    one line before anything trains; with logits-only losses the plan describes the BiLSTM."""
    refused = compress_cli(
        tiny_teacher_dir, tmp_path / "o", small_data, "--student-kind", "bilstm", "--dry-run"
    )
    assert_user_error(refused, "loss hidden_mse reads hidden states, which a bilstm student")
    recipe = tmp_path / "logits.yaml"
    recipe.write_text(
        "distill:\n  prediction_weight: 0\n  intermediate: [{name: logits_mse}]\n"
        "student:\n  hidden: 16\n  mlp: 8\n"
    )
    planned = compress_cli(tiny_teacher_dir, tmp_path / "o", small_data, "--student-kind",
                           "bilstm", "--recipe", str(recipe), "--dry-run")  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    assert "BiLSTM, 16 units per direction, 8-unit ReLU layer" in " ".join(planned.stdout.split())
    assert not (tmp_path / "o").exists()


def _raises(exc: BaseException) -> Callable[[], None]:
    """A stand-in for the Typer app that fails with `exc`."""

    def app() -> None:
        raise exc

    return app


def _torch_disk_full() -> RuntimeError:
    try:
        raise OSError(28, "No space left on device")
    except OSError as cause:
        try:
            raise RuntimeError("[enforce fail] PytorchStreamWriter failed writing file") from cause
        except RuntimeError as error:
            return error


@pytest.mark.parametrize(
    ("exc", "line"),
    [
        (OSError(28, "No space left on device", "/runs/x/model.safetensors"),
         "error: no space left on the device (/runs/x/model.safetensors) — free disk space, "
         "then rerun the same command with --resume"),
        (RuntimeError("PytorchStreamWriter failed writing file data/0: file write failed"),
         "error: no space left on the device — free disk space, then rerun the same command "
         "with --resume"),
        (_torch_disk_full(), "error: no space left on the device — free disk space"),
        (PermissionError(13, "Permission denied", "/ro/run"),
         "error: cannot write (/ro/run): Permission denied — choose a writable --out folder"),
    ],
)  # fmt: skip
def test_a_full_disk_or_unwritable_folder_is_one_line_and_exit_2(
    exc: BaseException, line: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    cli_app = importlib.import_module("compressor.cli.app")  # the package's `app` is Typer's
    monkeypatch.setattr(cli_app, "app", _raises(exc))
    with pytest.raises(SystemExit) as exit_info:
        cli_app.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(line) and "\n" not in err and "Traceback" not in err


@pytest.mark.parametrize("exc", [RuntimeError("a bug"), OSError(2, "No such file"), KeyError("x")])
def test_other_errors_keep_their_traceback(
    exc: BaseException, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli_app = importlib.import_module("compressor.cli.app")  # the package's `app` is Typer's
    monkeypatch.setattr(cli_app, "app", _raises(exc))
    with pytest.raises(type(exc)):
        cli_app.main()
