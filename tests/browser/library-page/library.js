// Test-only: the same wasm module the extension ships (dist/hearth_wasm_bg.wasm) with its
// wasm-bindgen glue (extension/pkg/hearth_wasm.js), exposed for library.test.mjs to drive.
import init, { Library } from './hearth_wasm.js';

globalThis.hearthLibrary = init({ module_or_path: 'hearth_wasm_bg.wasm' }).then(() => Library);
