//! `hearth-models`: weight formats and loaders, the Llama decoder, the BERT sentence encoder,
//! tokenizers and chat templates.

pub mod adapters;
pub mod bert;
pub mod chat;
pub mod config;
pub mod error;
pub mod gguf;
pub mod known;
pub mod llama;
pub mod loader;
pub mod pack;
pub mod reference;
pub mod safetensors;
pub mod source;
pub mod tokenizer;
pub mod weights;

pub use adapters::ChatModel;
pub use bert::{EncoderFiles, SentenceEncoder};
pub use chat::{ChatTemplate, Message, Role};
pub use config::{Llama3RopeScaling, LlamaConfig, RopeStyle};
pub use error::{ModelError, Result};
#[cfg(not(target_arch = "wasm32"))]
pub use loader::{default_model_path, load_path, load_path_as, load_path_with};
pub use loader::{
    load_gguf_bytes, load_pack_files, LoadReport, ModelFiles, ModelKind, TokenizerFiles,
};
pub use tokenizer::{StreamDecoder, Tokenizer};
pub use weights::{LayerWeights, LlamaWeights};
