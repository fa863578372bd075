#!/usr/bin/env bash
# Packs the llama.cpp sources vendored in PyPI's llama-cpp-python sdist into a tarball small enough
# to carry to the GPU machine (the 76 MB sdist is not): only what a CUDA build of `llama-bench`
# needs, plus gguf-py (to write the benchmark GGUF there) and the Llama-3 BPE vocabulary GGUF.
# The sources are never committed. Usage: scripts/bench/llamacpp_src.sh [OUT.tgz]
set -euo pipefail
VERSION=0.3.36
OUT=${1:-.dev/llamacpp-src.tgz}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/hearth/sdist
SDIST=$CACHE/llama_cpp_python-$VERSION.tar.gz
if [[ ! -f $SDIST ]]; then
  mkdir -p "$CACHE"
  pip download --no-deps --no-binary :all: --no-build-isolation -d "$CACHE" "llama-cpp-python==$VERSION"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$SDIST" -C "$work" "llama_cpp_python-$VERSION/vendor/llama.cpp"
src=$work/llama_cpp_python-$VERSION/vendor/llama.cpp
keep=(CMakeLists.txt cmake ggml src include common tools vendor gguf-py models/ggml-vocab-llama-bpe.gguf)
# The top-level CMakeLists adds `app` (a downloader front end) unconditionally: an empty one will do.
mkdir -p "$work/stub/app" && : >"$work/stub/app/CMakeLists.txt"
mkdir -p "$(dirname "$OUT")"
tar -czf "$OUT" --exclude=tools/ui -C "$src" "${keep[@]}" -C "$work/stub" app
echo "$OUT: $(du -h "$OUT" | cut -f1) (llama.cpp from llama-cpp-python $VERSION)"
