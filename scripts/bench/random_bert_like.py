#!/usr/bin/env python3
"""Writes a sentence-transformers directory with the shapes of another (its config.json) and random
f32 weights (numpy only): for timing runs on a machine the real weights cannot travel to. Speed does
not depend on weight values. `random_bert_like.py SRC_DIR OUT_DIR` copies SRC_DIR's json files and
tokenizer and writes OUT_DIR/model.safetensors."""
import json, os, shutil, struct, sys

import numpy as np


def main(src, out):
    os.makedirs(out, exist_ok=True)
    for root, _, files in os.walk(src):
        for f in files:
            if f.endswith(".json") or f == "vocab.txt":
                rel = os.path.relpath(os.path.join(root, f), src)
                os.makedirs(os.path.dirname(os.path.join(out, rel)) or out, exist_ok=True)
                shutil.copy(os.path.join(root, f), os.path.join(out, rel))
    os.makedirs(os.path.join(out, "2_Normalize"), exist_ok=True)
    c = json.load(open(os.path.join(src, "config.json")))
    d, f = c["hidden_size"], c["intermediate_size"]
    shapes = {
        "embeddings.word_embeddings.weight": [c["vocab_size"], d],
        "embeddings.position_embeddings.weight": [c["max_position_embeddings"], d],
        "embeddings.token_type_embeddings.weight": [c.get("type_vocab_size", 2), d],
        "embeddings.LayerNorm.weight": [d],
        "embeddings.LayerNorm.bias": [d],
    }
    for i in range(c["num_hidden_layers"]):
        l = f"encoder.layer.{i}"
        for p in ("query", "key", "value"):
            shapes[f"{l}.attention.self.{p}.weight"] = [d, d]
            shapes[f"{l}.attention.self.{p}.bias"] = [d]
        shapes.update({
            f"{l}.attention.output.dense.weight": [d, d], f"{l}.attention.output.dense.bias": [d],
            f"{l}.attention.output.LayerNorm.weight": [d], f"{l}.attention.output.LayerNorm.bias": [d],
            f"{l}.intermediate.dense.weight": [f, d], f"{l}.intermediate.dense.bias": [f],
            f"{l}.output.dense.weight": [d, f], f"{l}.output.dense.bias": [d],
            f"{l}.output.LayerNorm.weight": [d], f"{l}.output.LayerNorm.bias": [d],
        })
    rng = np.random.default_rng(0)
    header, blobs, off = {}, [], 0
    for name, shape in shapes.items():
        a = (rng.standard_normal(shape) * 0.02).astype("<f4")
        if name.endswith("LayerNorm.weight"):
            a += 1.0
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as fh:
        fh.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            fh.write(b)


if __name__ == "__main__":
    main(*sys.argv[1:3])
