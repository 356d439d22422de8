"""End-to-end files (tokenizer inside the graph): gated on every real SST-2 dev sentence."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

import exporters.e2e
from compressor.data import Split
from compressor.inference import onnx_session, predict_logits
from compressor.recipe import QuantizeConfig
from exporters.artifacts import quantize_checked
from exporters.e2e import e2e_checked, run_e2e
from exporters.onnx import export_onnx
from tests.conftest import build_tokenizer, sst2_rows
from tests.packages import copy_package

DEV = Split(*map(list, zip(*sst2_rows("dev"), strict=True)))


def full_vocab_classifier(folder: Path) -> Path:
    """A tiny classifier whose WordPiece vocabulary, like every real BERT's, holds each
    character alone and as a `##` continuation, so no word is left unsplittable."""
    build_tokenizer(folder, vocab_words=400)
    words = (folder / "vocab.txt").read_text(encoding="utf-8").split()
    chars = sorted({c for text in DEV.texts for c in text.lower() if not c.isspace()})
    vocab = list(dict.fromkeys([*words, *chars, *(f"##{c}" for c in chars)]))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True).save_pretrained(
        folder
    )
    torch.manual_seed(3)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=4, intermediate_size=64, initializer_range=0.3,
                        max_position_embeddings=128)  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """fp32 and dynamic int8 files of a classifier with spread logits, in one package."""
    folder = tmp_path_factory.mktemp("e2e")
    model = full_vocab_classifier(folder / "model")
    fp32 = export_onnx(model, folder / "onnx")
    int8 = quantize_checked(fp32, model, DEV.take(32), cfg=QuantizeConfig(), calibration=None,
                            max_length=64, recipe_hash="h")  # fmt: skip
    return [fp32, Path(int8["path"])]


@pytest.fixture(scope="module")
def checked(graphs: list[Path]) -> dict[Path, dict]:
    """Each file's end-to-end file, gated on all 872 dev sentences (once for the module)."""
    return {g: e2e_checked(g, DEV, max_length=64, tolerance=1e-4, recipe_hash="h") for g in graphs}


def test_every_dev_sentence_gets_the_python_tokenizers_ids_and_the_models_logits(
    checked: dict[Path, dict],
) -> None:
    for graph, made in checked.items():
        gate = made["gate"]
        assert gate["passed"] and gate["n"] == 872 and gate["token_id_mismatches"] == 0
        assert gate["max_abs_diff"] <= 1e-4, graph.name
        path = Path(made["path"])
        assert path == graph.with_name(f"{graph.stem}_e2e.onnx")

        # scored like its source: dynamic int8 one sentence at a time and at predict's batch
        def accuracy(batch_size: int, graph: Path = graph) -> float:
            logits = predict_logits(graph, DEV.texts, max_length=64, batch_size=batch_size)
            assert set(logits.argmax(1).tolist()) == {0, 1}, "a constant model proves nothing"
            return float(np.mean(logits.argmax(1) == np.asarray(DEV.labels)))

        if "int8" in graph.name:
            assert made["dev_accuracy"] == accuracy(1)
            assert made["dev_accuracy_batched"] == {"batch_size": 64, "dev_accuracy": accuracy(64)}
        else:
            assert made["dev_accuracy"] == accuracy(64) and "dev_accuracy_batched" not in made
        entry = json.loads((graph.parents[1] / "manifest.json").read_text())[f"onnx/{path.name}"]
        assert entry["source_model"] == f"onnx/{graph.name}"
        assert entry["runtime"]["custom_op_library"] == "onnxruntime-extensions"
        assert entry["dev_accuracy"] == made["dev_accuracy"] and entry["size_bytes"] > 0
        assert [i["name"] for i in entry["inputs"]] == ["text"]


def test_one_sentence_at_a_time_gives_the_same_label_as_the_model_file(
    graphs: list[Path], checked: dict[Path, dict]
) -> None:
    fp32 = graphs[0]
    path = Path(checked[fp32]["path"])
    texts = DEV.texts[:40]
    alone = [run_e2e(onnx_session(path), [t]) for t in texts]
    reference = predict_logits(fp32, texts, max_length=64, batch_size=1)
    got = np.concatenate([out["logits"] for out in alone])
    np.testing.assert_allclose(got, reference, atol=1e-5)
    assert [int(out["label"][0]) for out in alone] == reference.argmax(1).tolist()


def test_a_tokenizer_that_keeps_accents_fails_the_gate_and_is_removed(
    graphs: list[Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # the extensions' converter alone keeps the accents the Hugging Face tokenizer strips
    monkeypatch.setattr(exporters.e2e, "_strips_accents", lambda tokenizer: False)
    fp32 = copy_package(graphs[0], tmp_path / "onnx") / "model.onnx"
    accented = [i for i, t in enumerate(DEV.texts) if not t.isascii()]
    rows = [*range(40), *accented]
    sample = Split([DEV.texts[i] for i in rows], [DEV.labels[i] for i in rows])
    made = e2e_checked(fp32, sample, max_length=64, tolerance=1e-4, recipe_hash="h")
    assert made["path"] is None and not made["gate"]["passed"]
    # amélie, naiveté, maelström ...: among the accented sentences, not among the others
    assert 1 <= made["gate"]["token_id_mismatches"] <= len(accented)
    assert not fp32.with_name("model_e2e.onnx").exists()


def test_a_word_the_vocabulary_cannot_split_differs_and_fails_the_gate(
    tiny_teacher_dir: Path, tmp_path: Path
) -> None:
    # with 400 words and no `##` pieces, the extensions' WordPiece keeps the prefix it found
    # ("charm" + [UNK] for "charming") where Hugging Face's gives one [UNK] for the word
    fp32 = export_onnx(tiny_teacher_dir, tmp_path / "onnx")
    made = e2e_checked(fp32, DEV.take(100), max_length=64, tolerance=1e-4, recipe_hash="h")
    assert made["path"] is None and made["gate"]["token_id_mismatches"] > 50
    assert sorted(p.name for p in fp32.parent.iterdir()) == ["model.onnx"]


def test_sentence_pairs_are_skipped_with_the_reason(graphs: list[Path]) -> None:
    pairs = Split(DEV.texts[:8], DEV.labels[:8], DEV.texts[8:16])
    made = e2e_checked(graphs[0], pairs, max_length=64, tolerance=1e-4, recipe_hash="h")
    assert made["path"] is None and "sentence pairs" in made["skipped"]


def test_the_end_to_end_file_converts_to_ort_with_the_tokenizer_in_its_operator_list(
    graphs: list[Path], checked: dict[Path, dict]
) -> None:
    from exporters.artifacts import ort_format_checked

    made = checked[graphs[1]]
    [ort_file] = ort_format_checked([Path(made["path"])], DEV.take(48), max_length=64,
                                    recipe_hash="h")  # fmt: skip
    assert ort_file["parity"]["passed"] and ort_file["parity"]["max_abs_diff"] <= 1e-5
    operators = Path(ort_file["required_operators"]).read_text(encoding="utf-8")
    assert "ai.onnx.contrib;1;BertTokenizer" in operators
    labels = run_e2e(onnx_session(Path(ort_file["ort"])), DEV.texts[:16])["label"]
    assert labels.tolist() == predict_logits(graphs[1], DEV.texts[:16], max_length=64,
                                             batch_size=16).argmax(1).tolist()  # fmt: skip
