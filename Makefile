# Hearth. The two commands: `make run` and `make test` (see README.md). Both first run `make deps`,
# which installs only what is missing (scripts/deps.sh), then fetch the models (manifest/*.json).

SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# The Makefile builds in the default target/ even when the caller has another CARGO_TARGET_DIR.
unexport CARGO_TARGET_DIR
CARGO ?= cargo
export npm_config_cache ?= $(HOME)/.cache/npm

# Headless machines often have no XDG_RUNTIME_DIR; Mesa's Vulkan WSI then prints an "error" line for
# every device created (harmless, but it buries test output). Give it a private one.
ifeq ($(XDG_RUNTIME_DIR),)
export XDG_RUNTIME_DIR := $(shell d=/tmp/hearth-runtime-$$(id -u); mkdir -p -m 700 "$$d" && echo "$$d")
endif

HEARTH_MODELS ?= $(HOME)/.cache/hearth/models
export HEARTH_MODELS
SMOLLM2 := $(HEARTH_MODELS)/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf
MINILM := $(HEARTH_MODELS)/all-minilm-l6-v2
HEARTH := target/release/hearth

# make run: a few real chapters of the Rust Book (installed with the toolchain's docs) become the
# knowledge index, then Hearth answers a question about them with sources.
BOOK := $(shell rustc --print sysroot 2>/dev/null)/share/doc/rust/html/book
RUN_DOCS ?= $(BOOK)/ch08-01-vectors.html $(BOOK)/ch08-03-hash-maps.html
RUN_INDEX ?= $(HOME)/.cache/hearth/run-index
QUESTION ?= How do I add an element to the end of a vector?
MAX_TOKENS ?= 160
BENCH_ARGS ?=

WASM_RAW := target/wasm32-unknown-unknown/release/hearth_wasm.wasm
PKG := extension/pkg
NODE_BIN := extension/node_modules/.bin
# The features rustc's wasm32 target emits by default; wasm-opt must keep to them.
WASM_FEATURES := --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
                 --enable-mutable-globals --enable-reference-types --enable-multivalue

.PHONY: help run test test-rust test-browser test-e2e deps models release extension bench fmt lint clean

help:
	@echo 'make run       fetch models, build the CLI, index two Rust Book chapters, answer a question with sources'
	@echo 'make test      Rust tests (GPU ones on lavapipe) + the extension in Chromium (WebGPU)'
	@echo 'make deps      install what is missing (apt, rustup target, wasm-bindgen-cli, npm ci)'
	@echo 'make models    fetch and verify the models in $(HEARTH_MODELS)'
	@echo 'make extension build extension/dist and extension/hearth-extension.zip'
	@echo 'make bench     hearth bench $(BENCH_ARGS) (prefill/decode speed; BENCH_ARGS="--json ...")'
	@echo 'make fmt | lint | clean'

deps:
	@bash scripts/deps.sh

models:
	@python3 scripts/fetch_models.py

release:
	@echo '== cargo build --release -p hearth-cli'
	$(CARGO) build --release -p hearth-cli

run: deps models release
	@echo '== hearth ingest: $(notdir $(RUN_DOCS)) → $(RUN_INDEX) (unchanged files are skipped)'
	$(HEARTH) ingest --index "$(RUN_INDEX)" $(RUN_DOCS)
	@echo '== hearth ask: "$(QUESTION)" (SmolLM2-135M-Instruct answers from the index, citing it)'
	$(HEARTH) ask --index "$(RUN_INDEX)" --max-tokens $(MAX_TOKENS) --context 2048 -k 4 --timings "$(QUESTION)"
	@echo
	@echo 'More: hearth search / docs / summarize / chat --index "$(RUN_INDEX)"  (hearth --help).'
	@echo 'The extension: make extension, then chrome://extensions → Developer mode → "Load unpacked" →'
	@echo "  $(CURDIR)/extension/dist   (Chrome or Edge 124+; WebGPU required)."

bench: deps release
	$(HEARTH) bench $(BENCH_ARGS)

test: deps models
	@$(MAKE) test-rust
	@$(MAKE) extension
	@$(MAKE) release
	@$(MAKE) test-browser

test-rust:
	@echo '== cargo test --workspace (GPU tests run on lavapipe when there is no GPU)'
	$(CARGO) test --workspace

test-browser:
	@test -f extension/dist/manifest.json || { echo 'extension/dist missing: run make extension'; exit 1; }
	@echo '== browser tests: extension/dist in Chromium with WebGPU (SwiftShader)'
	node --test tests/browser/

# Only the side panel end to end (~3 min on SwiftShader, test-words answering).
test-e2e:
	node --test tests/browser/panel.test.mjs

# ---- The extension: Rust → wasm → wasm-bindgen → wasm-opt, then TypeScript → esbuild ----

extension: deps models
	@echo '== cargo build -p hearth-wasm --target wasm32-unknown-unknown --release'
	$(CARGO) build -p hearth-wasm --target wasm32-unknown-unknown --release
	@$(MAKE) $(PKG)/hearth_wasm_bg.wasm
	@echo '== tsc --noEmit (strict) and esbuild'
	cd extension && node_modules/.bin/tsc --noEmit -p . && node build.mjs

# Re-run only when cargo produced a new module (cargo leaves an up-to-date artifact untouched).
$(PKG)/hearth_wasm_bg.wasm: $(WASM_RAW)
	@echo '== wasm-bindgen --target web, wasm-opt -O3'
	rm -rf $(PKG).tmp
	wasm-bindgen --target web --out-dir $(PKG).tmp $(WASM_RAW)
	$(NODE_BIN)/wasm-opt -O3 $(WASM_FEATURES) $(PKG).tmp/hearth_wasm_bg.wasm -o $(PKG).tmp/hearth_wasm_bg.wasm
	cd extension && node check-wasm.mjs pkg.tmp
	rm -rf $(PKG) && mv $(PKG).tmp $(PKG)

# ---- Formatting and lints ----

fmt:
	$(CARGO) fmt --all

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p hearth-wasm --target wasm32-unknown-unknown -- -D warnings
	cd extension && node_modules/.bin/tsc --noEmit -p .

clean:
	rm -rf extension/dist extension/pkg extension/pkg.tmp extension/hearth-extension.zip tests/browser/screenshots
	$(CARGO) clean
