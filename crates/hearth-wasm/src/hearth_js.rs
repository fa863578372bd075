//! [`Hearth`]: [`HearthCore`] for the service worker. One call at a time: a call made while another
//! holds the engine is rejected with "busy" (the worker queues its calls, so this is a bug guard).
//! Long calls take `on(progress)`, a function called with `{ piece }`, `{ step }` or
//! `{ embedded, total }`; returning `false` from it stops the work.

// Each call holds the engine's borrow across its awaits on purpose: that is what makes a second,
// concurrent call fail with "busy" instead of interleaving with the first.
#![allow(clippy::await_holding_refcell_ref)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use hearth_models::{load_gguf_bytes, load_pack_files, EncoderFiles, ModelError};
use js_sys::{Function, Object, Promise, Uint8Array};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::hearth::{Event, HearthCore, ParsedInput, Scope};
use crate::{js_err, to_js};

#[wasm_bindgen]
pub struct Hearth {
    core: Rc<RefCell<HearthCore>>,
}

const BUSY: &str = "the engine is busy with another task";

fn busy() -> JsValue {
    JsError::new(BUSY).into()
}

fn err(e: impl std::fmt::Display) -> JsValue {
    js_err(e).into()
}

/// Calls `on` with one progress event; `false` from it means stop.
fn report(on: &Function, event: Event) -> bool {
    #[derive(Serialize)]
    #[serde(untagged)]
    enum Msg<'a> {
        Piece { piece: &'a str },
        Step { step: String },
        Embedded { embedded: usize, total: usize },
    }
    let msg = match event {
        Event::Piece(piece) => Msg::Piece { piece },
        Event::Step(step) => Msg::Step { step },
        Event::Embedded(p) => Msg::Embedded {
            embedded: p.chunks_done,
            total: p.chunks_total,
        },
    };
    match to_js(&msg) {
        Ok(v) => on
            .call1(&JsValue::NULL, &v)
            .map(|r| r.as_bool() != Some(false))
            .unwrap_or(true),
        Err(_) => true,
    }
}

/// `obj[name]` as bytes, if it is a `Uint8Array`.
fn bytes_of(obj: &JsValue, name: &str) -> Result<Option<Vec<u8>>, JsError> {
    let v = js_sys::Reflect::get(obj, &JsValue::from_str(name))
        .map_err(|_| JsError::new(&format!("cannot read `{name}`")))?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let arr = v
        .dyn_into::<Uint8Array>()
        .map_err(|_| JsError::new(&format!("`{name}` must be a Uint8Array")))?;
    Ok(Some(arr.to_vec()))
}

fn required(obj: &JsValue, name: &str) -> Result<Vec<u8>, JsError> {
    bytes_of(obj, name)?.ok_or_else(|| JsError::new(&format!("the encoder needs `{name}`")))
}

impl Hearth {
    fn core(&self) -> Result<std::cell::Ref<'_, HearthCore>, JsError> {
        self.core.try_borrow().map_err(|_| JsError::new(BUSY))
    }

    fn core_mut(&self) -> Result<std::cell::RefMut<'_, HearthCore>, JsError> {
        self.core.try_borrow_mut().map_err(|_| JsError::new(BUSY))
    }
}

#[wasm_bindgen]
impl Hearth {
    /// Opens a GPU device. Rejects when WebGPU is unavailable.
    pub async fn create() -> Result<Hearth, JsError> {
        let core = HearthCore::new().await.map_err(js_err)?;
        Ok(Hearth {
            core: Rc::new(RefCell::new(core)),
        })
    }

    /// Whether the GPU device was lost (then `resetGpu` and load the models again).
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> bool {
        self.core.try_borrow().is_ok_and(|c| c.device_lost())
    }

    /// A new device; the models must be loaded again, the indexes are kept.
    #[wasm_bindgen(js_name = resetGpu)]
    pub fn reset_gpu(&self) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            c.reset_gpu().await.map_err(err)?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Destroys the device as a driver reset would (to test recovery).
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) -> Result<(), JsError> {
        let c = self.core()?;
        c.lose_device();
        Ok(())
    }

    /// `files`: `{ config, weights, tokenizer, pooling?, sentence?, modules? }` as `Uint8Array`s.
    /// Returns `{ dim, max_tokens }`.
    #[wasm_bindgen(js_name = loadEncoder)]
    pub fn load_encoder(&self, files: JsValue) -> Result<JsValue, JsError> {
        let (config, weights, tokenizer) = (
            required(&files, "config")?,
            required(&files, "weights")?,
            required(&files, "tokenizer")?,
        );
        let (pooling, sentence, modules) = (
            bytes_of(&files, "pooling")?,
            bytes_of(&files, "sentence")?,
            bytes_of(&files, "modules")?,
        );
        let files = EncoderFiles {
            config: &config,
            weights: &weights,
            tokenizer: &tokenizer,
            pooling: pooling.as_deref(),
            sentence: sentence.as_deref(),
            modules: modules.as_deref(),
        };
        let mut c = self.core_mut()?;
        let (dim, max_tokens) = c.load_encoder(&files).map_err(js_err)?;
        #[derive(Serialize)]
        struct Info {
            dim: usize,
            max_tokens: usize,
        }
        to_js(&Info { dim, max_tokens })
    }

    /// Loads a GGUF file as the answering model; resolves to its GPU bytes.
    #[wasm_bindgen(js_name = loadGguf)]
    pub fn load_gguf(&self, bytes: Vec<u8>, max_context: u32) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let files = load_gguf_bytes(&bytes).map_err(err)?;
            drop(bytes);
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            let n = c
                .load_generator(&files, max_context as usize)
                .await
                .map_err(err)?;
            Ok(JsValue::from_f64(n as f64))
        })
    }

    /// Loads a Hearth pack given as `{ "<file name>": Uint8Array, … }` (every file's sha256 is
    /// checked against its `manifest.json`); resolves to its GPU bytes.
    #[wasm_bindgen(js_name = loadPack)]
    pub fn load_pack(&self, files: Object, max_context: u32) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let mut map = BTreeMap::new();
            for entry in Object::entries(&files).iter() {
                let pair = js_sys::Array::from(&entry);
                let name = pair.get(0).as_string().unwrap_or_default();
                let bytes = pair
                    .get(1)
                    .dyn_into::<Uint8Array>()
                    .map_err(|_| err(format!("pack file {name} is not a Uint8Array")))?;
                map.insert(name, bytes.to_vec());
            }
            // Each file is read once: hand it over instead of copying gigabytes.
            let map = RefCell::new(map);
            let get = |name: &str| {
                map.borrow_mut()
                    .remove(name)
                    .ok_or_else(|| ModelError::Config(format!("the pack has no file {name}")))
            };
            let model = load_pack_files(&get).map_err(err)?;
            drop(map);
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            let n = c
                .load_generator(&model, max_context as usize)
                .await
                .map_err(err)?;
            Ok(JsValue::from_f64(n as f64))
        })
    }

    /// Opens the library from snapshot bytes, or empty when `snapshot` is undefined.
    #[wasm_bindgen(js_name = openLibrary)]
    pub fn open_library(&self, snapshot: Option<Vec<u8>>) -> Result<(), JsError> {
        let mut c = self.core_mut()?;
        c.open_library(snapshot.as_deref()).map_err(js_err)
    }

    /// The library as snapshot bytes (what `openLibrary` reads).
    pub fn snapshot(&self) -> Result<Vec<u8>, JsError> {
        let c = self.core()?;
        c.snapshot().map_err(js_err)
    }

    pub fn documents(&self) -> Result<JsValue, JsError> {
        let c = self.core()?;
        to_js(&c.documents().map_err(js_err)?)
    }

    /// `{ documents, chunks, page: { url, title, chunks } | null }`.
    pub fn counts(&self) -> Result<JsValue, JsError> {
        #[derive(Serialize)]
        struct PageInfo {
            url: String,
            title: String,
            chunks: usize,
        }
        #[derive(Serialize)]
        struct Counts {
            documents: usize,
            chunks: usize,
            page: Option<PageInfo>,
        }
        let c = self.core()?;
        let (documents, chunks) = c.counts();
        let page = c
            .page_info()
            .map(|(url, title, chunks)| PageInfo { url, title, chunks });
        to_js(&Counts {
            documents,
            chunks,
            page,
        })
    }

    /// Removes a document by id; resolves to whether it existed.
    pub fn remove(&self, id: &str) -> Result<bool, JsError> {
        let mut c = self.core_mut()?;
        Ok(c.remove(id).is_ok())
    }

    /// Embeds and stores `{ doc, chunks }`; resolves to `{ status, id, old, chunks }`.
    #[wasm_bindgen(js_name = addDocument)]
    pub fn add_document(&self, parsed: JsValue, on: Function) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let parsed: ParsedInput = serde_wasm_bindgen::from_value(parsed).map_err(err)?;
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            let r = c
                .add_document(parsed, &mut |e| report(&on, e))
                .await
                .map_err(err)?;
            to_js(&r).map_err(JsValue::from)
        })
    }

    /// Indexes the page "This page" answers about; resolves to its chunk count.
    #[wasm_bindgen(js_name = indexPage)]
    pub fn index_page(&self, parsed: JsValue, on: Function) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let parsed: ParsedInput = serde_wasm_bindgen::from_value(parsed).map_err(err)?;
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            let n = c
                .index_page(parsed, &mut |e| report(&on, e))
                .await
                .map_err(err)?;
            Ok(JsValue::from_f64(n as f64))
        })
    }

    /// Stores the indexed page in the library.
    #[wasm_bindgen(js_name = addPage)]
    pub fn add_page(&self) -> Result<JsValue, JsError> {
        let mut c = self.core_mut()?;
        to_js(&c.add_page().map_err(js_err)?)
    }

    /// Answers `question` from `scope` (`page` | `library` | `all`).
    pub fn ask(&self, question: String, scope: JsValue, on: Function) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let scope: Scope = serde_wasm_bindgen::from_value(scope).map_err(err)?;
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            let a = c
                .ask(&question, scope, &mut |e| report(&on, e))
                .await
                .map_err(err)?;
            to_js(&a).map_err(JsValue::from)
        })
    }

    /// One chat turn (`regenerate`: answer the last question again, replacing its turn).
    pub fn chat(&self, message: String, scope: JsValue, regenerate: bool, on: Function) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let scope: Scope = serde_wasm_bindgen::from_value(scope).map_err(err)?;
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            let a = c
                .chat(&message, scope, regenerate, &mut |e| report(&on, e))
                .await
                .map_err(err)?;
            to_js(&a).map_err(JsValue::from)
        })
    }

    #[wasm_bindgen(js_name = chatReset)]
    pub fn chat_reset(&self) -> Result<(), JsError> {
        let mut c = self.core_mut()?;
        c.chat_reset();
        Ok(())
    }

    /// Summarizes the indexed page (`id` undefined) or a library document.
    pub fn summarize(&self, id: Option<String>, on: Function) -> Promise {
        let core = self.core.clone();
        future_to_promise(async move {
            let mut c = core.try_borrow_mut().map_err(|_| busy())?;
            let s = c
                .summarize(id.as_deref(), &mut |e| report(&on, e))
                .await
                .map_err(err)?;
            to_js(&s).map_err(JsValue::from)
        })
    }
}
