// Checks that the wasm-bindgen glue still initialises the (wasm-opt'ed) module: instantiates it in
// Node with `initSync`, which runs the glue's table setup and the Rust start function. Debian's old
// wasm-opt produced modules that validate but break exactly here.
//
// Usage: node check-wasm.mjs [pkg-dir]

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const dir = resolve(process.argv[2] ?? 'pkg');
const bytes = readFileSync(join(dir, 'hearth_wasm_bg.wasm'));
if (!WebAssembly.validate(bytes)) {
  console.error(`${dir}/hearth_wasm_bg.wasm does not validate`);
  process.exit(1);
}
const glue = await import(pathToFileURL(join(dir, 'hearth_wasm.js')).href);
const exports = glue.initSync({ module: bytes });
const missing = ['gpuInfo', 'selfTest'].filter((f) => typeof glue[f] !== 'function' || typeof exports[f] !== 'function');
if (missing.length > 0) {
  console.error(`the wasm module lacks ${missing.join(', ')}`);
  process.exit(1);
}
console.log(`wasm ok: ${(bytes.length / 1024).toFixed(0)} KiB, instantiates, exports gpuInfo and selfTest`);
