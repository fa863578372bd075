#!/usr/bin/env python3
"""sentence-transformers throughput, tokenization included, the way `hearth bench --embed-texts`
measures ours: `st_embed_bench.py --model DIR --texts FILE.json[.gz] [--batch 128] [--runs 3]`
prints one JSON line with inputs/s in fp32 and fp16 (CUDA), best of --runs after a warm-up."""
import argparse, gzip, json, time

import torch
from sentence_transformers import SentenceTransformer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--texts", required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    opener = gzip.open if a.texts.endswith(".gz") else open
    texts = json.load(opener(a.texts, "rt", encoding="utf-8"))["texts"]
    model = SentenceTransformer(a.model, device="cuda", model_kwargs={"torch_dtype": torch.float32})
    tok = model.tokenizer
    lens = [len(tok(t, truncation=True, max_length=model.max_seq_length)["input_ids"]) for t in texts]
    res = {"texts": len(texts), "mean_tokens": sum(lens) / len(lens), "batch": a.batch,
           "device": torch.cuda.get_device_name(), "sentence_transformers": __import__("sentence_transformers").__version__,
           "torch": torch.__version__}
    for name in ("fp32", "fp16"):
        m = model if name == "fp32" else model.half()
        m.encode(texts[:256], batch_size=a.batch)
        best = float("inf")
        for _ in range(a.runs):
            torch.cuda.synchronize()
            t = time.perf_counter()
            m.encode(texts, batch_size=a.batch, convert_to_numpy=True)
            best = min(best, time.perf_counter() - t)
        res[name + "_inputs_per_s"] = round(len(texts) / best, 1)
    print(json.dumps({"st_bench": res}))


if __name__ == "__main__":
    main()
