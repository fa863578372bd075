#!/usr/bin/env python3
"""Rewrite a safetensors file with every F32 tensor stored as F16 (numpy only), so a model fits the
device tool's 64 MiB carry limit: `to_f16_safetensors.py IN OUT`."""
import json, struct, sys

import numpy as np


def main(src, dst):
    raw = open(src, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    meta = header.pop("__metadata__", None)
    out_header, blobs, off = {}, [], 0
    for name, t in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        s, e = t["data_offsets"]
        data = raw[base + s : base + e]
        dtype = t["dtype"]
        if dtype == "F32":
            data = np.frombuffer(data, dtype="<f4").astype("<f2").tobytes()
            dtype = "F16"
        out_header[name] = {"dtype": dtype, "shape": t["shape"], "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    if meta is not None:
        out_header["__metadata__"] = meta
    h = json.dumps(out_header).encode()
    h += b" " * (-len(h) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


if __name__ == "__main__":
    main(*sys.argv[1:3])
