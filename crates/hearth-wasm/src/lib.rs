//! wasm-bindgen glue for the extension service worker.
