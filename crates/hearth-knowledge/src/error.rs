//! The one error type of `hearth-knowledge`.

#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    /// A document (or something inside it) is over an extraction limit: size, depth, count or
    /// work budget. `limit` is in the unit `what` names.
    #[error("document exceeds the {what} limit ({limit})")]
    Limit { what: &'static str, limit: u64 },
    /// A document could not be parsed as the format it claims to be.
    #[error("malformed {format} document: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },
    /// A document kind or feature that extraction does not handle (encrypted PDF, binary data).
    #[error("unsupported document: {0}")]
    Unsupported(String),
    /// An embedding whose length differs from the index dimension.
    #[error("embedding has {found} dimensions, the index expects {expected}")]
    DimensionMismatch { expected: usize, found: usize },
    /// Arguments that cannot be indexed (counts that disagree, non-finite or zero vectors, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("no document with id {0}")]
    UnknownDocument(String),
    /// A rebuilt dense segment was started from a base that has since been replaced.
    #[error("rebuilt segment is stale: built from generation {built_from}, index is at {current}")]
    StaleRebuild { built_from: u64, current: u64 },
    #[error("background rebuild failed: {0}")]
    Rebuild(String),
    /// The embedding model failed (GPU error, bad output).
    #[error("embedding model: {0}")]
    Embed(String),
    #[error("reranker: {0}")]
    Rerank(String),
    /// Not a Hearth index snapshot at all.
    #[error("not a Hearth index snapshot (bad magic)")]
    SnapshotMagic,
    #[error("snapshot format version {found} is not supported (this build reads {supported})")]
    SnapshotVersion { found: u32, supported: u32 },
    #[error("snapshot truncated: {0}")]
    SnapshotTruncated(String),
    #[error("snapshot checksum mismatch: header says {expected:#010x}, payload has {found:#010x}")]
    SnapshotChecksum { expected: u32, found: u32 },
    /// Checksum-valid bytes that still do not describe a consistent index.
    #[error("snapshot corrupt: {0}")]
    SnapshotCorrupt(String),
}

pub type Result<T, E = KnowledgeError> = std::result::Result<T, E>;
