//! The one error type of `hearth-knowledge`.

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = KnowledgeError> = std::result::Result<T, E>;
