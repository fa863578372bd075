//! Hugging Face Llama folder → Hearth pack, in the extension's throwaway convert worker (a dedicated
//! `Worker` of the side panel: `FileReaderSync` exists there and nowhere else, and a panic or an
//! out-of-memory there costs that worker only).
//!
//! The folder's `File`s are read in slices through `FileReaderSync`, the weights quantised (to Q4S,
//! the default) by the same loader `hearth convert` uses, and the pack written by the same writer, piece by piece,
//! into a JavaScript `sink` (the worker writes the pieces to OPFS).

use hearth_models::known::check_hf_config;
use hearth_models::pack::{write_pack_to, PackSink};
use hearth_models::safetensors::{load_hf_with, CONFIG};
use hearth_models::source::{ModelSource, ReadAt};
use hearth_models::{ModelError, Result};
use js_sys::{Function, Object, Reflect, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use web_sys::{Blob, FileReaderSync};

use crate::{js_err, to_js};

fn js_failure(what: &str, e: JsValue) -> ModelError {
    let msg = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    ModelError::Unsupported(format!("{what}: {msg}"))
}

/// The chosen folder: `{ "<file name>": File }`.
struct BlobSource {
    files: Object,
    reader: FileReaderSync,
}

struct BlobFile {
    name: String,
    blob: Blob,
    reader: FileReaderSync,
}

impl ReadAt for BlobFile {
    fn size(&self) -> u64 {
        self.blob.size() as u64
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let end = offset + buf.len() as u64;
        if end > self.size() {
            return Err(ModelError::Safetensors(format!(
                "{}: read past its end ({end} > {} bytes)",
                self.name,
                self.size()
            )));
        }
        let slice = self
            .blob
            .slice_with_f64_and_f64(offset as f64, end as f64)
            .map_err(|e| js_failure(&self.name, e))?;
        let bytes = self
            .reader
            .read_as_array_buffer(&slice)
            .map_err(|e| js_failure(&format!("reading {}", self.name), e))?;
        let bytes = Uint8Array::new(&bytes);
        if bytes.length() as usize != buf.len() {
            return Err(ModelError::Safetensors(format!(
                "{}: changed while it was read",
                self.name
            )));
        }
        bytes.copy_to(buf);
        Ok(())
    }
}

impl BlobSource {
    fn blob(&self, name: &str) -> Option<Blob> {
        Reflect::get(&self.files, &JsValue::from_str(name))
            .ok()
            .and_then(|v| v.dyn_into::<Blob>().ok())
    }
}

impl ModelSource for BlobSource {
    fn describe(&self) -> String {
        "the chosen folder".into()
    }

    fn exists(&self, name: &str) -> bool {
        self.blob(name).is_some()
    }

    fn open(&self, name: &str) -> Result<Box<dyn ReadAt + '_>> {
        let blob = self
            .blob(name)
            .ok_or_else(|| ModelError::MissingFile(name.into()))?;
        Ok(Box::new(BlobFile {
            name: name.into(),
            blob,
            reader: self.reader.clone(),
        }))
    }
}

/// Hands each piece to `sink(op, arg)`: `("begin", name)`, `("write", Uint8Array)`, `("end")`.
/// The callback writes synchronously (a `FileSystemSyncAccessHandle`); a throw stops the work.
struct JsSink<'a> {
    sink: &'a Function,
}

impl JsSink<'_> {
    fn call(&self, op: &str, arg: &JsValue) -> Result<()> {
        self.sink
            .call2(&JsValue::NULL, &JsValue::from_str(op), arg)
            .map(|_| ())
            .map_err(|e| js_failure("writing the pack", e))
    }
}

impl PackSink for JsSink<'_> {
    fn begin(&mut self, name: &str) -> Result<()> {
        self.call("begin", &JsValue::from_str(name))
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        // A copy into JavaScript's heap: the piece is at most 4 MiB.
        self.call("write", &Uint8Array::from(bytes).into())
    }

    fn end(&mut self) -> Result<()> {
        self.call("end", &JsValue::UNDEFINED)
    }
}

#[derive(Serialize)]
struct Progress<'a> {
    phase: &'a str,
    done: f64,
    total: f64,
}

fn report(on: &Function, phase: &str, done: u64, total: u64) {
    let msg = Progress {
        phase,
        done: done as f64,
        total: total as f64,
    };
    if let Ok(v) = to_js(&msg) {
        // Progress is advisory: a failing callback does not stop the conversion.
        let _ = on.call1(&JsValue::NULL, &v);
    }
}

/// Converts the Hugging Face Llama folder `files` (`{ "<file name>": File }`) into a Hearth pack
/// written through `sink` (see [`JsSink`]), `manifest.json` last. `on_progress` gets
/// `{ phase: "quantising", done, total }` in tensors, then `{ phase: "writing", done, total }` in
/// bytes. When the folder claims to be a model Hearth knows (`known_name`), its `config.json` must
/// hold the values `known_config` (JSON) lists. Returns the pack's manifest.
#[wasm_bindgen(js_name = convertHfFolder)]
pub fn convert_hf_folder(
    files: Object,
    sink: &Function,
    on_progress: &Function,
    known_name: Option<String>,
    known_config: Option<String>,
) -> Result<JsValue, JsError> {
    let src = BlobSource {
        files,
        reader: FileReaderSync::new().map_err(|_| {
            JsError::new(
                "FileReaderSync is unavailable: the converter must run in a dedicated worker",
            )
        })?,
    };
    if !src.exists(CONFIG) {
        return Err(JsError::new(
            "the folder has no config.json: it is neither a Hugging Face model nor a Hearth pack",
        ));
    }
    if let (Some(name), Some(config)) = (known_name, known_config) {
        let expected: serde_json::Value = serde_json::from_str(&config).map_err(js_err)?;
        check_hf_config(&name, &src.read_all(CONFIG).map_err(js_err)?, &expected)
            .map_err(js_err)?;
    }
    let model = load_hf_with(&src, &mut |done, total| {
        report(on_progress, "quantising", done, total)
    })
    .map_err(js_err)?;
    let manifest = write_pack_to(&model, &mut JsSink { sink }, &mut |done, total| {
        report(on_progress, "writing", done, total)
    })
    .map_err(js_err)?;
    to_js(&manifest)
}
