#!/usr/bin/env bash
# Hearth and llama.cpp side by side on one GPU, in one command: the same GGUF (Llama-3.2-1B shapes,
# Q4_0, scripts/bench/make_llama1b_gguf.py), the same prompt lengths and depths, decode of 128.
# Usage: scripts/bench/compare.sh HEARTH LLAMA_BENCH MODEL.gguf OUT_DIR
# Writes OUT_DIR/{llamacpp.json,hearth.json,table.md} and prints the table.
set -euo pipefail
HEARTH=$1 LLAMA_BENCH=$2 MODEL=$3 OUT=$4
mkdir -p "$OUT"
# llama.cpp: flash attention on, every layer on the GPU, 3 repetitions (its mean is reported).
"$LLAMA_BENCH" -m "$MODEL" -ngl 99 -fa 1 -p 512,2048 -n 128 -d 0,2048 -r 3 -o json >"$OUT/llamacpp.json"
"$HEARTH" bench --model "$MODEL" --prefill 512,2048 --depths 0,2048 --decode-tokens 128 --json >"$OUT/hearth.json"
# GPU memory at the engine's default 512-token prefill passes (scratch scales with the pass), and a
# per-kernel profile of every pass (timestamps between kernels, so each kernel reads a little long).
"$HEARTH" bench --model "$MODEL" --prefill 2048 --prefill-chunk 512 --depths 0 --decode-tokens 16 --json >"$OUT/hearth-chunk512.json"
"$HEARTH" bench --model "$MODEL" --prefill 512,2048 --depths 0,2048 --decode-tokens 16 --profile --json >"$OUT/hearth-profile.json" 2>"$OUT/hearth-profile.log"
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
ll = json.load(open(f"{out}/llamacpp.json"))
he = json.load(open(f"{out}/hearth.json"))
def llama(n_prompt, n_gen, depth):
    for r in ll:
        if r["n_prompt"] == n_prompt and r["n_gen"] == n_gen and r.get("n_depth", 0) == depth:
            return r["avg_ts"]
    return None
rows = []
for p in he["prefill"]:
    rows.append((f"prefill {p['tokens']} (depth 0)", p["tok_s"], llama(p["tokens"], 0, 0)))
for d in he["decode"]:
    rows.append((f"decode {d['tokens']} at depth {d['depth']}", d["tok_s"], llama(0, d["tokens"], d["depth"])))
gpu = ll[0].get("gpu_info", "?")
lines = [f"GPU: {gpu}; llama.cpp build {ll[0].get('build_commit', '?')} (CUDA); Hearth: {he['device']}",
         "", "| measurement | Hearth tok/s | llama.cpp tok/s | Hearth / llama.cpp |", "|---|---|---|---|"]
for name, h, l in rows:
    ratio = f"{h / l:.2f}×" if l else "—"
    lines.append(f"| {name} | {h:,.0f} | {l:,.0f} | {ratio} |" if l else f"| {name} | {h:,.0f} | — | — |")
lines.append("")
c5 = json.load(open(f"{out}/hearth-chunk512.json"))
lines.append(f"Hearth GPU memory {he['gpu_bytes'] / 1e6:,.0f} MB at context {he['max_context']} with 2,048-token prefill passes, "
             f"{c5['gpu_bytes'] / 1e6:,.0f} MB with 512 (weights {he['weight_bytes'] / 1e6:,.1f} MB); upload {he['load_s']:.2f} s")
lines.append(f"prefill 2048 in 512-token passes: {c5['prefill'][0]['tok_s']:,.0f} tok/s ({c5['prefill'][0]['seconds']:.3f} s)")
open(f"{out}/table.md", "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
