#!/usr/bin/env bash
# Everything issue 6 compares, in one command on the GPU machine (device tool), from the repository
# root with `.dev/` carried (see docs/benchmarks.md, "Side by side"):
#   .dev/bin/hearth            release build of this commit
#   .dev/llamacpp-src.tgz      scripts/bench/llamacpp_src.sh
#   .dev/minilm-shape          all-MiniLM-L6-v2's json files and tokenizer (no weights)
#   .dev/bench_texts.json.gz   scripts/reference/book_text.py windows of Rust Book text
# Usage: scripts/bench/side_by_side.sh OUT_DIR
set -euo pipefail
OUT=$1 WORK=${WORK:-/tmp/hearth-side-by-side}
mkdir -p "$OUT" "$WORK"
export PATH=$PATH:/usr/local/cuda/bin
HEARTH=.dev/bin/hearth
if [[ ! -x $WORK/ll/build/bin/llama-bench ]]; then
  echo "== building llama.cpp (CUDA) …"
  bash scripts/bench/build_llamacpp.sh .dev/llamacpp-src.tgz "$WORK/ll"
fi
if [[ ! -f $WORK/llama-1b-q4_0.gguf ]]; then
  echo "== writing the Llama-3.2-1B-shaped Q4_0 GGUF …"
  PYTHONPATH=$WORK/ll/src/gguf-py python3 scripts/bench/make_llama1b_gguf.py \
    "$WORK/ll/src/models/ggml-vocab-llama-bpe.gguf" "$WORK/llama-1b-q4_0.gguf"
fi
echo "== decode and prefill: Hearth and llama.cpp on the same GGUF"
bash scripts/bench/compare.sh "$HEARTH" "$WORK/ll/build/bin/llama-bench" "$WORK/llama-1b-q4_0.gguf" "$OUT"
echo "== embeddings: Hearth and sentence-transformers on the same texts and weights"
gunzip -c .dev/bench_texts.json.gz >"$WORK/texts.json"
python3 scripts/bench/random_bert_like.py .dev/minilm-shape "$WORK/minilm" >/dev/null
"$HEARTH" bench --embed-texts "$WORK/texts.json" --encoder "$WORK/minilm" --runs 3 --json >"$OUT/hearth-embed.json"
python3 scripts/bench/st_embed_bench.py --model "$WORK/minilm" --texts "$WORK/texts.json" >"$OUT/st-embed.json"
cat "$OUT/hearth-embed.json" "$OUT/st-embed.json"
echo "== cold start: process start to the first generated token (1B-shaped Hearth pack on local disk)"
[[ -f $WORK/pack/manifest.json ]] || "$HEARTH" convert --model "$WORK/llama-1b-q4_0.gguf" --out "$WORK/pack" 2>/dev/null
cat "$WORK/pack"/* >/dev/null  # the pack in the page cache, as on a machine that used it before
start=$(date +%s.%N)
"$HEARTH" generate --model "$WORK/pack" --prompt "Hello" --max-tokens 1 --json >"$OUT/cold-start.json" 2>"$OUT/cold-start.log"
end=$(date +%s.%N)
python3 -c "print('cold start to first token: %.2f s' % ($end - $start))" | tee -a "$OUT/table.md"
cat "$OUT/cold-start.log" "$OUT/cold-start.json"
# The same with every file hashed, as a pack copied from elsewhere loads the first time.
start=$(date +%s.%N)
HEARTH_VERIFY=always "$HEARTH" generate --model "$WORK/pack" --prompt "Hello" --max-tokens 1 --json >"$OUT/cold-start-verify.json" 2>"$OUT/cold-start-verify.log"
end=$(date +%s.%N)
python3 -c "print('cold start to first token, every file hashed: %.2f s' % ($end - $start))" | tee -a "$OUT/table.md"
cat "$OUT/cold-start-verify.json"
