// Runs a shipped ONNX package through transformers.js the way a user of the library would
// (AutoTokenizer + AutoModelForSequenceClassification, or AutoModelForTokenClassification for
// a tagger, on the folder as it is), for tests/test_transformers_js.py and
// tests/test_transformers_js_tagger.py, which compare the output with ONNX Runtime in Python.
//
// stdin:  {"folder": "/abs/package", "dtypes": ["fp32", "int8"], "texts": [...],
//          "max_length": 64, "threads": 1, "task": "token-classification" (optional)}
// stdout: {"version": "...", "<dtype>": {"logits": [...], "labels": [...],
//          "load_ms": n, "ms_per_sentence": n}, ...}; per text, "logits" holds one row (a
//          classifier) or one row per word piece (a tagger), and "labels" the argmax names
//          the same way.
//
// Sentences go through one at a time: dynamic int8 picks its activation scales per batch,
// padding included, so only unbatched runs see the same inputs as the Python side.
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

import {
  AutoModelForSequenceClassification,
  AutoModelForTokenClassification,
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
const tagger = request.task === "token-classification";
const Auto = tagger ? AutoModelForTokenClassification : AutoModelForSequenceClassification;

// logits of one text as rows of `width` values: one row, or one per word piece
function rows(data, width) {
  const out = [];
  for (let start = 0; start < data.length; start += width) {
    out.push(data.slice(start, start + width));
  }
  return out;
}

const tokenizer = await AutoTokenizer.from_pretrained(folder);
const result = { version: env.version };
for (const dtype of dtypes) {
  const loadStart = performance.now();
  const model = await Auto.from_pretrained(folder, {
    dtype,
    device: "cpu",
    session_options: sessionOptions,
  });
  const loadMs = performance.now() - loadStart;
  const name = (row) => {
    const best = row.indexOf(Math.max(...row));
    return model.config.id2label?.[best] ?? String(best);
  };
  const logits = [];
  const labels = [];
  const start = performance.now();
  for (const text of texts) {
    const inputs = tokenizer(text, { truncation: true, max_length: maxLength });
    const output = await model(inputs);
    const found = rows(Array.from(output.logits.data), output.logits.dims.at(-1));
    logits.push(tagger ? found : found[0]);
    labels.push(tagger ? found.map(name) : name(found[0]));
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
