//! The assistant's only view of a language model. Implemented for the real engine (Llama /
//! SmolLM2 on `hearth-models`) by the CLI and the extension, and in tests by a scripted fake.
//! Async because on the web every GPU readback is.

use serde::{Deserialize, Serialize};

use crate::Result;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new(Role::System, content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new(Role::User, content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new(Role::Assistant, content)
    }
}

/// A chat model. Rendering lives here because every model has its own chat format.
#[allow(async_fn_in_trait)] // used generically, never as `dyn`
pub trait Generator {
    /// Tokens the model attends to: prompt and generated tokens together.
    fn context_len(&self) -> usize;
    /// Tokens `text` becomes when it is given to [`Self::generate`] as a prompt (special tokens
    /// of a rendered chat included), so `count_tokens(&render(m)?)` is a prompt's length.
    fn count_tokens(&self, text: &str) -> usize;
    /// The prompt for `messages` in the model's own chat format, ending where the assistant's
    /// reply begins (generation prompt appended).
    fn render(&self, messages: &[Message]) -> Result<String>;
    /// Generates at most `max_tokens` tokens after `prompt`, passing each decoded piece to
    /// `on_piece` as it is produced; `on_piece` returning `false` stops generation at once.
    /// Returns the generated text (the pieces concatenated, end-of-turn markers excluded).
    /// The assistant guarantees `count_tokens(prompt) + max_tokens <= context_len()`.
    async fn generate(
        &mut self,
        prompt: &str,
        max_tokens: usize,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String>;
    /// The index of the option the model finds most likely to come right after `prompt`,
    /// comparing the options' first tokens (a constrained choice, e.g. of a source number).
    /// `options` is non-empty; the assistant guarantees `count_tokens(prompt) < context_len()`.
    async fn choose(&mut self, prompt: &str, options: &[&str]) -> Result<usize>;
}

/// A prompt rendered and measured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    pub tokens: usize,
}

/// Renders `messages` and counts the result with the generator's tokenizer.
pub fn measure<G: Generator>(gen: &G, messages: &[Message]) -> Result<Prompt> {
    let text = gen.render(messages)?;
    let tokens = gen.count_tokens(&text);
    Ok(Prompt { text, tokens })
}

/// What one generation produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    pub text: String,
    /// The caller's `on_piece` asked to stop.
    pub stopped: bool,
    /// Prompt length in tokens.
    pub prompt_tokens: usize,
}

/// Generates after `prompt` with up to `max_tokens` tokens, never more than the context has left,
/// recording whether `on_piece` stopped it.
pub(crate) async fn run<G: Generator>(
    gen: &mut G,
    prompt: &Prompt,
    max_tokens: usize,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<Generated> {
    let room = gen.context_len().saturating_sub(prompt.tokens);
    let max_tokens = max_tokens.min(room);
    if max_tokens == 0 {
        return Err(crate::AssistantError::ContextTooSmall {
            needed: prompt.tokens.saturating_add(1),
            context: gen.context_len(),
        });
    }
    let mut stopped = false;
    let mut forward = |piece: &str| {
        let go = on_piece(piece);
        stopped |= !go;
        go
    };
    let text = gen.generate(&prompt.text, max_tokens, &mut forward).await?;
    Ok(Generated {
        text,
        stopped,
        prompt_tokens: prompt.tokens,
    })
}
