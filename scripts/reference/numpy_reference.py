#!/usr/bin/env python3
"""Independent float64 reference forward pass of SmolLM2-135M-Instruct (Llama) from its GGUF.

Purpose: ground truth to arbitrate where Hearth's GPU engine and llama.cpp disagree. llama.cpp's
CPU path quantises activations to 8 bits inside its dot products (q8_0/q8_1); Hearth keeps f32
activations; this script keeps everything in float64 after an exact dequantisation of the weights.

Writes tests/fixtures/reference_f64/smollm2.json (schema: tests/fixtures/reference_f64/README.md):
teacher-forced top-10 logits for every prompt of tests/fixtures/llamacpp/smollm2.json `logits[]`
(same names and ids) and f64 greedy completions for its `chat[]` prompts.

Tested with: python 3.11, numpy 2.4.6, gguf 0.19.0 (`pip install numpy==2.4.6 gguf==0.19.0`).
Run (≈1 min on 2 cores):
  python3 scripts/reference/numpy_reference.py \
      [--model ~/.cache/hearth/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf]

Model (llama.cpp conventions, LLAMA_ROPE_TYPE_NORM):
  x = token_embd[ids]
  30 × { h = rmsnorm(x)·attn_norm; q,k,v = h·Wᵀ; RoPE on adjacent pairs (2i, 2i+1) with base
         llama.rope.freq_base (the converter permuted Q/K rows for this layout); causal softmax
         attention, GQA (9 q heads / 3 kv heads), scale 1/sqrt(64); x += attn·Woᵀ;
         h = rmsnorm(x)·ffn_norm; x += W_down·(silu(W_gate·h) ⊙ W_up·h) }
  logits = (rmsnorm(x)·output_norm)·token_embdᵀ   (tied embeddings: the GGUF has no output.weight)

Dequantisation is done here in float64 (exact: every value is d·q (+ m) with f16 d, m), and checked
against gguf.quants.dequantize (which rounds Q4_1's d·q + m to f32).
"""

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as QT

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEFAULT_MODEL = os.path.expanduser(
    "~/.cache/hearth/models/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf")
DEFAULT_LLAMACPP = os.path.join(ROOT, "tests", "fixtures", "llamacpp", "smollm2.json")
DEFAULT_OUT = os.path.join(ROOT, "tests", "fixtures", "reference_f64", "smollm2.json")
TOP_K = 10
MAX_NEW_TOKENS = 48


# ---------------------------------------------------------------- dequantisation (float64, exact)

def deq_q8_0(raw: np.ndarray) -> np.ndarray:
    # block: f16 d, 32 × int8 q; value = d·q
    b = raw.reshape(-1, 34)
    d = b[:, :2].copy().view(np.float16).astype(np.float64)
    q = b[:, 2:].copy().view(np.int8).astype(np.float64)
    return q * d


def deq_q4_1(raw: np.ndarray) -> np.ndarray:
    # block: f16 d, f16 m, 16 bytes; element j = low nibble of byte j, element j+16 = high nibble
    b = raw.reshape(-1, 20)
    d = b[:, 0:2].copy().view(np.float16).astype(np.float64)
    m = b[:, 2:4].copy().view(np.float16).astype(np.float64)
    qs = b[:, 4:]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float64)
    return q * d + m


def load_tensor(t) -> np.ndarray:
    """Returns the tensor as float64 with numpy shape = reversed GGUF dims ([rows, cols])."""
    shape = tuple(int(x) for x in reversed(t.shape))  # GGUF dims are innermost-first
    n = int(np.prod(shape))
    raw = np.ascontiguousarray(t.data).reshape(-1).view(np.uint8)
    if t.tensor_type == QT.F32:
        out = raw.view(np.float32).astype(np.float64)
    elif t.tensor_type == QT.Q8_0:
        out = deq_q8_0(raw)
    elif t.tensor_type == QT.Q4_1:
        out = deq_q4_1(raw)
    else:
        raise SystemExit(f"{t.name}: unsupported type {t.tensor_type.name}")
    out = out.reshape(shape)
    assert out.size == n
    # cross-check against the gguf package's dequantiser (f32 arithmetic)
    ref = gguf.quants.dequantize(t.data, t.tensor_type).reshape(shape).astype(np.float64)
    err = float(np.max(np.abs(ref - out)))
    scale = float(np.max(np.abs(out))) or 1.0
    assert err <= 1e-6 * scale, f"{t.name}: dequant mismatch {err}"
    return out


class Model:
    def __init__(self, path: str):
        r = gguf.GGUFReader(path)
        f = r.fields

        def kv(key):
            return f[key].contents()

        assert kv("general.architecture") == "llama"
        self.n_layer = int(kv("llama.block_count"))
        self.n_embd = int(kv("llama.embedding_length"))
        self.n_head = int(kv("llama.attention.head_count"))
        self.n_head_kv = int(kv("llama.attention.head_count_kv"))
        self.eps = float(kv("llama.attention.layer_norm_rms_epsilon"))  # f32 1e-5 widened
        self.rope_base = float(kv("llama.rope.freq_base"))
        self.head_dim = self.n_embd // self.n_head
        assert int(kv("llama.rope.dimension_count")) == self.head_dim
        self.tokens = kv("tokenizer.ggml.tokens")
        self.max_dequant_err_vs_gguf = 0.0

        t = {x.name: x for x in r.tensors}
        assert "output.weight" not in t, "expected tied embeddings"
        W = {name: load_tensor(x) for name, x in t.items()}
        E, H, Hk, D = self.n_embd, self.n_head, self.n_head_kv, self.head_dim
        self.tok_embd = W["token_embd.weight"]
        assert self.tok_embd.shape == (len(self.tokens), E)
        self.output_norm = W["output_norm.weight"]
        self.layers = []
        for i in range(self.n_layer):
            p = f"blk.{i}."
            L = {k: W[p + k + ".weight"] for k in (
                "attn_norm", "attn_q", "attn_k", "attn_v", "attn_output",
                "ffn_norm", "ffn_gate", "ffn_up", "ffn_down")}
            F = L["ffn_gate"].shape[0]
            assert L["attn_q"].shape == (H * D, E) and L["attn_k"].shape == (Hk * D, E)
            assert L["attn_v"].shape == (Hk * D, E) and L["attn_output"].shape == (E, H * D)
            assert L["ffn_up"].shape == (F, E) and L["ffn_down"].shape == (E, F)
            self.layers.append(L)
        # RoPE inverse frequencies for adjacent pairs (2i, 2i+1)
        self.inv_freq = self.rope_base ** (-np.arange(0, D, 2, dtype=np.float64) / D)

    def rmsnorm(self, x, w):
        return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + self.eps) * w

    def rope(self, x, pos):
        # x: [T, heads, D]; rotate adjacent pairs (LLAMA_ROPE_TYPE_NORM)
        ang = pos[:, None].astype(np.float64) * self.inv_freq[None, :]  # [T, D/2]
        c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
        x0, x1 = x[..., 0::2], x[..., 1::2]
        out = np.empty_like(x)
        out[..., 0::2] = x0 * c - x1 * s
        out[..., 1::2] = x0 * s + x1 * c
        return out

    def forward(self, ids, cache, all_logits=True):
        """ids: new tokens; cache: list of (K, V) per layer ([T_past, Hk, D]) or None entries.
        Returns logits [T_new, n_vocab] (or [1, n_vocab] for the last position)."""
        H, Hk, D = self.n_head, self.n_head_kv, self.head_dim
        T = len(ids)
        past = 0 if cache[0] is None else cache[0][0].shape[0]
        pos = np.arange(past, past + T)
        x = self.tok_embd[np.asarray(ids)]
        for li, L in enumerate(self.layers):
            h = self.rmsnorm(x, L["attn_norm"])
            q = (h @ L["attn_q"].T).reshape(T, H, D)
            k = (h @ L["attn_k"].T).reshape(T, Hk, D)
            v = (h @ L["attn_v"].T).reshape(T, Hk, D)
            q, k = self.rope(q, pos), self.rope(k, pos)
            if cache[li] is not None:
                k = np.concatenate([cache[li][0], k], axis=0)
                v = np.concatenate([cache[li][1], v], axis=0)
            cache[li] = (k, v)
            S = k.shape[0]
            kh = np.repeat(k, H // Hk, axis=1)  # q head j uses kv head j // (H/Hk)
            vh = np.repeat(v, H // Hk, axis=1)
            att = np.einsum("thd,shd->hts", q, kh) / np.sqrt(D)
            mask = np.arange(S)[None, :] > pos[:, None]  # causal
            att = np.where(mask[None], -np.inf, att)
            att = np.exp(att - att.max(axis=-1, keepdims=True))
            att /= att.sum(axis=-1, keepdims=True)
            o = np.einsum("hts,shd->thd", att, vh).reshape(T, H * D)
            x = x + o @ L["attn_output"].T
            h = self.rmsnorm(x, L["ffn_norm"])
            g = h @ L["ffn_gate"].T
            u = h @ L["ffn_up"].T
            x = x + (g / (1.0 + np.exp(-g)) * u) @ L["ffn_down"].T
        if not all_logits:
            x = x[-1:]
        return self.rmsnorm(x, self.output_norm) @ self.tok_embd.T


def top_k(logits_row, k=TOP_K):
    order = np.lexsort((np.arange(len(logits_row)), -logits_row))  # desc logit, ties: lower id
    top = order[:k]
    return ([int(i) for i in top], [float(logits_row[i]) for i in top],
            float(logits_row[order[0]] - logits_row[order[1]]))


_BYTE_DEC = None


def detok(tokens, ids):
    """Rough GPT-2 byte-level BPE decode."""
    global _BYTE_DEC
    if _BYTE_DEC is None:
        bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
        cs, n = bs[:], 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _BYTE_DEC = {chr(c): b for b, c in zip(bs, cs)}
    out = bytearray()
    for i in ids:
        s = tokens[i]
        if s.startswith("<|") and s.endswith("|>"):
            continue
        out += bytes(_BYTE_DEC.get(ch, ord("?")) for ch in s)
    return out.decode("utf-8", errors="replace")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--llamacpp", default=DEFAULT_LLAMACPP, help="llama.cpp reference JSON")
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    with open(args.model, "rb") as fh:
        sha = hashlib.sha256(fh.read()).hexdigest()
    ref = json.load(open(args.llamacpp))
    model = Model(args.model)
    eog = set(ref["vocab"]["eog_ids"])

    out_logits, stats = [], []
    for p in ref["logits"]:
        lg = model.forward(p["ids"], [None] * model.n_layer)
        positions = []
        agree = agree_conf = n_conf = 0
        diffs = []
        for i, lp in enumerate(p["positions"]):
            ids10, logits10, margin = top_k(lg[i])
            positions.append({"top_ids": ids10, "top_logits": logits10, "margin": margin})
            same = ids10[0] == lp["top_ids"][0]
            agree += same
            if lp["margin"] > 0.3:
                n_conf += 1
                agree_conf += same
            diffs += [abs(float(lg[i][t]) - v) for t, v in zip(lp["top_ids"], lp["top_logits"])]
        out_logits.append({"name": p["name"], "ids": p["ids"], "positions": positions})
        n = len(p["positions"])
        s = {"name": p["name"], "positions": n, "top1_agree": agree,
             "llamacpp_margin_gt_0.3": n_conf, "top1_agree_where_margin_gt_0.3": agree_conf,
             "max_abs_diff_top10": max(diffs), "mean_abs_diff_top10": float(np.mean(diffs))}
        stats.append(s)
        print(json.dumps(s), file=sys.stderr)
        if p["name"] == "chat" and len(p["positions"]) > 36:
            row = lg[36]
            print(f"chat pos 36: f64 logit[60]={row[60]:.4f} logit[504]={row[504]:.4f} "
                  f"f64 top1={int(np.argmax(row))} top={top_k(row, 5)} "
                  f"llama.cpp top={p['positions'][36]['top_ids'][:5]} "
                  f"{p['positions'][36]['top_logits'][:5]}", file=sys.stderr)
        if agree < 0.8 * n:
            raise SystemExit(f"{p['name']}: only {agree}/{n} top-1 agree with llama.cpp: bug?")

    out_chat = []
    for c in ref["chat"]:
        cache = [None] * model.n_layer
        lg = model.forward(c["prompt_ids"], cache, all_logits=False)[0]
        comp, margins, stop = [], [], "length"
        for _ in range(MAX_NEW_TOKENS):
            ids10, _, margin = top_k(lg, 2)
            nxt = ids10[0]
            comp.append(nxt)
            margins.append(margin)
            if nxt in eog:
                stop = "eos"
                break
            lg = model.forward([nxt], cache, all_logits=False)[0]
        text = detok(model.tokens, [i for i in comp if i not in eog])
        n_same = next((i for i, (a, b) in enumerate(zip(comp, c["completion_ids"])) if a != b),
                      min(len(comp), len(c["completion_ids"])))
        out_chat.append({"messages": c["messages"], "prompt_ids": c["prompt_ids"],
                         "completion_ids": comp, "completion_margins": margins,
                         "completion_text": text, "stop": stop,
                         "llamacpp_completion_ids": c["completion_ids"],
                         "common_prefix_with_llamacpp": n_same})
        print(f"chat {c['messages'][-1]['content']!r}: common prefix {n_same}; {text!r}",
              file=sys.stderr)

    doc = {
        "generator": "scripts/reference/numpy_reference.py",
        "meta": {
            "generator": "scripts/reference/numpy_reference.py",
            "numpy": np.__version__,
            "gguf": importlib.metadata.version("gguf"),
            "python": sys.version.split()[0],
            "model": os.path.basename(args.model),
            "model_sha256": sha,
            "precision": "float64 throughout (weights dequantised exactly to float64)",
            "llamacpp_fixture": "tests/fixtures/llamacpp/smollm2.json",
            "top_k": TOP_K,
            "max_new_tokens": MAX_NEW_TOKENS,
            "eog_ids": sorted(eog),
            "sampling": "greedy argmax over the raw logits (ties: lower id)",
        },
        "comparison_with_llamacpp": stats,
        "logits": out_logits,
        "chat": out_chat,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
