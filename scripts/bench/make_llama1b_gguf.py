#!/usr/bin/env python3
"""Writes a GGUF of Llama-3.2-1B-Instruct's exact shapes in Q4_0 with random weights, for llama.cpp's
`llama-bench` (the real checkpoint is not obtainable here, and speed does not depend on the values).

Shapes: hidden 2048, 16 layers, 32 query / 8 KV heads of 64, FFN 8192, vocabulary 128256, tied
embeddings (no `output.weight`), Llama-3 RoPE (theta 500000, the `rope_freqs` factors of scaling
factor 32 / low 1 / high 4 / original context 8192). Every matrix, the embedding included, is Q4_0
(what `llama-quantize --pure Q4_0` makes), i.e. group-32 INT4, the format `hearth bench` times.
The Q4_0 blocks are drawn directly (a small f16 scale, random nibbles) rather than quantised from
floats: 1.2 billion values would take minutes in numpy on the GPU machine.
The tokenizer is llama.cpp's own Llama-3 BPE vocabulary (`models/ggml-vocab-llama-bpe.gguf`).

Usage: make_llama1b_gguf.py VOCAB_GGUF OUT_GGUF  (with llama.cpp's gguf-py on PYTHONPATH)
"""

import math
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q, GGUFValueType as V

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB = 2048, 16, 32, 8, 64, 8192, 128256
THETA, FACTOR, LOW, HIGH, ORIGINAL = 500000.0, 32.0, 1.0, 4.0, 8192


def q4_0(rng, rows, cols, scale):
    """Random Q4_0 blocks: per 32 values an f16 scale then 16 bytes of nibbles (value = (n - 8) * d)."""
    blocks = rows * cols // 32
    out = np.empty((blocks, 18), dtype=np.uint8)
    out[:, :2] = np.frombuffer(np.float16(scale).tobytes(), dtype=np.uint8)
    out[:, 2:] = rng.integers(0, 256, size=(blocks, 16), dtype=np.uint8)
    return out.reshape(rows, cols // 32 * 18)


def rope_freqs():
    """Llama-3 frequency scaling, as llama.cpp's converter writes it (`rope_freqs.weight`)."""
    low_wavelen, high_wavelen = ORIGINAL / LOW, ORIGINAL / HIGH
    factors = []
    for i in range(0, HEAD_DIM, 2):
        freq = 1.0 / THETA ** (i / HEAD_DIM)
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            factors.append(1.0)
        elif wavelen > low_wavelen:
            factors.append(FACTOR)
        else:
            smooth = (ORIGINAL / wavelen - LOW) / (HIGH - LOW)
            factors.append(1.0 / ((1 - smooth) / FACTOR + smooth))
    return np.array(factors, dtype=np.float32)


def main(vocab_path, out_path):
    vocab = gguf.GGUFReader(vocab_path)
    rng = np.random.default_rng(1)
    w = gguf.GGUFWriter(out_path, "llama")
    w.add_name("Llama-3.2-1B shapes, random Q4_0 (Hearth benchmark)")
    w.add_block_count(LAYERS)
    w.add_context_length(131072)
    w.add_embedding_length(HIDDEN)
    w.add_feed_forward_length(FFN)
    w.add_head_count(HEADS)
    w.add_head_count_kv(KV_HEADS)
    w.add_rope_freq_base(THETA)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_file_type(2)  # MOSTLY_Q4_0
    w.add_vocab_size(VOCAB)
    w.add_rope_dimension_count(HEAD_DIM)
    for key, field in vocab.fields.items():
        if key.startswith("tokenizer."):
            vtype = field.types[0]
            sub = field.types[1] if vtype == V.ARRAY else None
            w.add_key_value(key, field.contents(), vtype, sub_type=sub)
    w.add_quantization_version(2)

    # 0.02 × (n − 8) ≈ a weight spread of 0.09: activations stay finite through 16 random layers.
    scale = 0.02
    w.add_tensor("token_embd.weight", q4_0(rng, VOCAB, HIDDEN, scale), raw_dtype=Q.Q4_0)
    w.add_tensor("rope_freqs.weight", rope_freqs())
    q, kv = HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM
    for i in range(LAYERS):
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
        for name, rows, cols in [
            ("attn_q", q, HIDDEN),
            ("attn_k", kv, HIDDEN),
            ("attn_v", kv, HIDDEN),
            ("attn_output", HIDDEN, q),
            ("ffn_gate", FFN, HIDDEN),
            ("ffn_up", FFN, HIDDEN),
            ("ffn_down", HIDDEN, FFN),
        ]:
            w.add_tensor(f"blk.{i}.{name}.weight", q4_0(rng, rows, cols, scale), raw_dtype=Q.Q4_0)
    w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
