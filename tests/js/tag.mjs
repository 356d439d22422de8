// Runs a shipped token-classification package through transformers.js the way a user of the
// library would (AutoTokenizer + AutoModelForTokenClassification on the folder as it is), for
// tests/test_transformers_js_tagger.py, which compares the output with ONNX Runtime in Python.
//
// stdin:  {"folder": "/abs/package", "dtypes": ["fp32", "int8"], "texts": [...],
//          "max_length": 128}
// stdout: {"version": "...", "<dtype>": {"logits": [[[...] per piece] per text],
//          "tags": [[...] per text]}, ...}
//
// One sentence at a time, as for the classifier: dynamic int8 scales depend on the batch.
import { readFileSync } from "node:fs";

import {
  AutoModelForTokenClassification,
  AutoTokenizer,
  env,
} from "@huggingface/transformers";

env.allowRemoteModels = false;
env.allowLocalModels = true;
env.useFSCache = false;

const request = JSON.parse(readFileSync(0, "utf-8"));
const { folder, dtypes, texts } = request;
const maxLength = request.max_length ?? 128;

const tokenizer = await AutoTokenizer.from_pretrained(folder);
const result = { version: env.version };
for (const dtype of dtypes) {
  const model = await AutoModelForTokenClassification.from_pretrained(folder, {
    dtype,
    device: "cpu",
  });
  const logits = [];
  const tags = [];
  for (const text of texts) {
    const inputs = tokenizer(text, { truncation: true, max_length: maxLength });
    const output = await model(inputs);
    const [, pieces, labels] = output.logits.dims;
    const data = Array.from(output.logits.data);
    const rows = [];
    const best = [];
    for (let p = 0; p < pieces; p++) {
      const row = data.slice(p * labels, (p + 1) * labels);
      rows.push(row);
      best.push(model.config.id2label?.[row.indexOf(Math.max(...row))] ?? "?");
    }
    logits.push(rows);
    tags.push(best);
  }
  result[dtype] = { logits, tags };
  await model.dispose();
}
process.stdout.write(JSON.stringify(result));
