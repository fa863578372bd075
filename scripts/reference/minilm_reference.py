#!/usr/bin/env python3
"""Reference embeddings, token ids and throughput for a sentence-transformers model (run on the GPU
machine, which has sentence-transformers; see docs/benchmarks.md for the exact command).

  minilm_reference.py --model DIR --sentences tests/fixtures/minilm/sentences.json \
      --out tests/fixtures/minilm/reference.json [--tokenize strings.json] [--bench texts.json]

--out: for each sentence, the model's input ids (truncated as sentence-transformers does, to
max_seq_length) and its normalised embedding (float32 compute). --tokenize: ids of each string
with no truncation (the tokenizer alone). --bench: chunks/s of `model.encode` (tokenization
included) over the given texts at batch 128, fp32 and fp16, printed as JSON.
The model dir may hold f16 weights (to fit the device tool's carry limit): they are upcast to
float32 at load, so the reference is exact for those weights."""
import argparse, gzip, json, time

import torch
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--sentences", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenize")
    ap.add_argument("--bench")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()

    model = SentenceTransformer(a.model, device=a.device, model_kwargs={"torch_dtype": torch.float32})
    torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32 matmuls for the reference
    torch.backends.cudnn.allow_tf32 = False
    sentences = json.load(open(a.sentences, encoding="utf-8"))["sentences"]
    tok = model.tokenizer
    ids = [
        tok(s, truncation=True, max_length=model.max_seq_length)["input_ids"] for s in sentences
    ]
    emb = model.encode(sentences, batch_size=8, convert_to_numpy=True, normalize_embeddings=False)
    out = {
        "generator": "scripts/reference/minilm_reference.py",
        "sentence_transformers": __import__("sentence_transformers").__version__,
        "torch": torch.__version__,
        "device": a.device,
        "max_seq_length": model.max_seq_length,
        "items": [
            {"text": s, "ids": i, "embedding": [round(float(x), 7) for x in e]}
            for s, i, e in zip(sentences, ids, emb)
        ],
    }
    if a.tokenize:
        strings = json.load(open(a.tokenize, encoding="utf-8"))["texts"]
        out["tokenized"] = [
            {"text": s, "ids": tok(s, truncation=False)["input_ids"]} for s in strings
        ]
    json.dump(out, open(a.out, "w"), ensure_ascii=False)

    if a.bench:
        opener = gzip.open if a.bench.endswith(".gz") else open
        texts = json.load(opener(a.bench, "rt", encoding="utf-8"))["texts"]
        lens = [len(tok(t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts]
        res = {"texts": len(texts), "min_tokens": min(lens), "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu"}
        for name in ("fp32", "fp16"):
            m = model if name == "fp32" else model.half()
            m.encode(texts[:256], batch_size=128)  # warm-up
            best = None
            for _ in range(3):
                if a.device == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                m.encode(texts, batch_size=128, convert_to_numpy=True)
                dt = time.perf_counter() - t
                best = dt if best is None else min(best, dt)
            res[name + "_chunks_per_s"] = round(len(texts) / best, 1)
        print(json.dumps({"bench": res}))


if __name__ == "__main__":
    main()
