#!/usr/bin/env python3
"""Reference embeddings, token ids and throughput for a sentence-transformers model (run on the GPU
machine, which has sentence-transformers; see docs/benchmarks.md for the exact command).

  minilm_reference.py --model DIR --sentences tests/fixtures/minilm/sentences.json \
      --out tests/fixtures/minilm/reference.json [--tokenize strings.json]

--out: for each sentence, the model's input ids (truncated as sentence-transformers does, to
max_seq_length) and its normalised embedding (float32 compute). --tokenize: ids of each string
with no truncation (the tokenizer alone). (Throughput: scripts/bench/st_embed_bench.py.)
The model dir may hold f16 weights (to fit the device tool's carry limit): they are upcast to
float32 at load, so the reference is exact for those weights."""
import argparse, json

import torch
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--sentences", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokenize")
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


if __name__ == "__main__":
    main()
