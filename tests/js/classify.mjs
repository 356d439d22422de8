// Runs a shipped ONNX package through transformers.js the way a user of the library would
// (AutoTokenizer + AutoModelForSequenceClassification on the folder as it is), for
// tests/test_transformers_js.py, which compares the output with ONNX Runtime in Python.
//
// stdin:  {"folder": "/abs/package", "dtypes": ["fp32", "int8"], "texts": [...],
//          "max_length": 64, "threads": 1}
// stdout: {"version": "...", "<dtype>": {"logits": [[...]], "labels": [...],
//          "load_ms": n, "ms_per_sentence": n}, ...}
//
// Sentences go through one at a time: dynamic int8 picks its activation scales per batch,
// padding included, so only unbatched runs see the same inputs as the Python side.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

import {
  AutoModelForSequenceClassification,
  AutoTokenizer,
  env,
} from "@huggingface/transformers";

// Only the package on disk may be read: a missing file must fail, not fall back to the hub.
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useFSCache = false;

const request = JSON.parse(readFileSync(0, "utf-8"));
const { folder, dtypes, texts } = request;
const maxLength = request.max_length ?? 128;
const sessionOptions = request.threads ? { intraOpNumThreads: request.threads } : {};

const tokenizer = await AutoTokenizer.from_pretrained(folder);
const result = { version: env.version };
for (const dtype of dtypes) {
  const loadStart = performance.now();
  const model = await AutoModelForSequenceClassification.from_pretrained(folder, {
    dtype,
    device: "cpu",
    session_options: sessionOptions,
  });
  const loadMs = performance.now() - loadStart;
  const logits = [];
  const labels = [];
  const start = performance.now();
  for (const text of texts) {
    const inputs = tokenizer(text, { truncation: true, max_length: maxLength });
    const output = await model(inputs);
    const row = Array.from(output.logits.data);
    const best = row.indexOf(Math.max(...row));
    logits.push(row);
    labels.push(model.config.id2label?.[best] ?? String(best));
  }
  result[dtype] = {
    logits,
    labels,
    load_ms: loadMs,
    ms_per_sentence: (performance.now() - start) / texts.length,
  };
  await model.dispose();
}
process.stdout.write(JSON.stringify(result));
