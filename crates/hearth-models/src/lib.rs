//! `hearth-models`: weight formats and loaders, the Llama decoder, tokenizers and chat templates.
