//! The one error type of `hearth-assistant`.

use hearth_knowledge::KnowledgeError;

#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    /// Retrieval failed (embedding model, index).
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    /// The generator failed (model error, template error, GPU error).
    #[error("generator: {0}")]
    Generator(String),
    /// Even the smallest prompt for the task (instructions, the question, room for the answer)
    /// does not fit the model's context window.
    #[error("the prompt needs {needed} tokens but the model's context holds {context}")]
    ContextTooSmall { needed: usize, context: usize },
    /// Arguments the assistant cannot work with (an empty question, a document without text).
    #[error("invalid input: {0}")]
    InvalidInput(String),
}

pub type Result<T, E = AssistantError> = std::result::Result<T, E>;
