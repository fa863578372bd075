#!/usr/bin/env bash
# Builds llama.cpp's `llama-bench` with CUDA from the tarball of scripts/bench/llamacpp_src.sh, on
# the GPU machine. Usage: scripts/bench/build_llamacpp.sh SRC.tgz WORKDIR [CUDA_ARCH (default 90)]
# Leaves WORKDIR/build/bin/llama-bench; the log is WORKDIR/build.log.
set -euo pipefail
SRC=$1 WORK=$2 ARCH=${3:-90}
mkdir -p "$WORK/src"
tar -xzf "$SRC" -C "$WORK/src"
cmake -S "$WORK/src" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$ARCH" -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
  -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >"$WORK/build.log" 2>&1
cmake --build "$WORK/build" --target llama-bench -j "$(nproc)" >>"$WORK/build.log" 2>&1
ls -la "$WORK/build/bin/llama-bench"
