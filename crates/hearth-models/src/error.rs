//! The one error type of `hearth-models`.

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Gpu(#[from] hearth_gpu::GpuError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A file the model folder should hold but does not (a shard, config.json, ...).
    #[error("the model folder has no file {0}")]
    MissingFile(String),
    /// A malformed or truncated GGUF file.
    #[error("bad GGUF file: {0}")]
    Gguf(String),
    /// A malformed safetensors file or Hugging Face directory.
    #[error("bad safetensors: {0}")]
    Safetensors(String),
    #[error("bad model config: {0}")]
    Config(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("missing tensor `{0}`")]
    MissingTensor(String),
    #[error("tensor `{name}`: expected shape {expected:?}, found {found:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("chat template: {0}")]
    Template(String),
    #[error("checksum mismatch for {file}: expected {expected}, found {found}")]
    Checksum {
        file: String,
        expected: String,
        found: String,
    },
    /// A malformed Hearth pack (manifest, layout).
    #[error("bad Hearth pack: {0}")]
    Pack(String),
    #[error("prompt of {tokens} tokens does not fit the context of {context} tokens")]
    ContextOverflow { tokens: usize, context: usize },
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
