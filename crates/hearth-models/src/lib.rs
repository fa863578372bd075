//! `hearth-models`: weight formats and loaders, the Llama decoder, tokenizers and chat templates.

pub mod config;
pub mod error;

pub use config::{Llama3RopeScaling, LlamaConfig, RopeStyle};
pub use error::{ModelError, Result};
