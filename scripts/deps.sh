#!/usr/bin/env bash
# Installs what `make run` / `make test` need and are missing, and nothing else. Idempotent: when
# everything is in place it only checks (about a second). Used by `make deps` and `.ci/run`.
#
#   apt:     mesa-vulkan-drivers (lavapipe: native GPU tests without a GPU), chromium and
#            chromium-driver (browser tests; SwiftShader WebGPU), nodejs/npm only if node is absent
#   rustup:  the wasm32-unknown-unknown target
#   cargo:   wasm-bindgen-cli, exactly the version Cargo.toml pins the wasm-bindgen crate to
#   npm:     extension/node_modules from package-lock.json (`npm ci --ignore-scripts`; playwright-core
#            never downloads a browser: the tests drive Debian's chromium)
#
# Expects Debian 12 (or similar) with rustup/cargo and python3 already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'deps: %s\n' "$*"; }
die() { printf 'deps: ERROR: %s\n' "$*" >&2; exit 1; }

# ---- apt ----
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
want=(mesa-vulkan-drivers chromium chromium-driver)
command -v node >/dev/null || want+=(nodejs npm)
missing=()
for p in "${want[@]}"; do installed "$p" || missing+=("$p"); done
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || die "need root (or sudo) to apt-get install ${missing[*]}"
    sudo=(sudo)
  fi
  say "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  say "apt packages present (${want[*]})"
fi

# ---- Rust ----
command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
command -v rustup >/dev/null || die "rustup not found: the wasm32 target is added with rustup"
if rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rust target wasm32-unknown-unknown present"
else
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
# The Rust Book HTML (rust-docs) is the real document set `make run` reads and the retrieval
# benchmarks use; a minimal rustup profile leaves it out.
if [ -d "$(rustc --print sysroot)/share/doc/rust/html/book" ]; then
  say "rust-docs present"
else
  say "rustup component add rust-docs"
  rustup component add rust-docs
fi

# The CLI must match the crate exactly (its schema version is checked at bindgen time).
wb_version=$(sed -n 's/^wasm-bindgen = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
[[ -n $wb_version ]] || die 'Cargo.toml must pin wasm-bindgen exactly (wasm-bindgen = "=x.y.z")'
if [[ $(wasm-bindgen --version 2>/dev/null || true) == "wasm-bindgen $wb_version" ]]; then
  say "wasm-bindgen $wb_version present"
else
  # No --locked: the CLI's lockfile wants a crate version crates.io no longer has.
  say "cargo install wasm-bindgen-cli --version $wb_version (takes a few minutes)"
  cargo install wasm-bindgen-cli --version "$wb_version"
fi

# ---- npm ----
command -v npm >/dev/null || die "npm not found"
export npm_config_cache="${npm_config_cache:-$HOME/.cache/npm}"
lock_sum=$(sha256sum extension/package-lock.json | cut -d' ' -f1)
stamp=extension/node_modules/.hearth-lock-sha256
if [[ -f $stamp && $(cat "$stamp") == "$lock_sum" ]]; then
  say "extension/node_modules up to date"
else
  say "npm ci in extension/ (cache $npm_config_cache)"
  (cd extension && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
  echo "$lock_sum" >"$stamp"
fi
