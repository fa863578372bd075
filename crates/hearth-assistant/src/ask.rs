//! Ask: retrieve, keep the relevant chunks, pack the best into the context as numbered
//! sources, generate a cited answer, map its citations back to the chunks.

use serde::Serialize;

use crate::cite::{self, Citation};
use crate::generator::{run, Generator, Message};
use crate::pack::pack_ask;
use crate::prompt::{ASK_SYSTEM, NOTHING_RELEVANT};
use crate::retrieve::{Retrieve, Retrieved};
use crate::{AssistantError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AskOptions {
    /// Tokens reserved for the answer (and its generation limit).
    pub answer_tokens: usize,
}

impl Default for AskOptions {
    fn default() -> Self {
        AskOptions { answer_tokens: 384 }
    }
}

/// An answer with its sources.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Answer {
    pub text: String,
    /// The sources the answer cites, each once, in order of first mention.
    pub citations: Vec<Citation>,
    /// Numbers the answer cites that were not given as sources (dropped from `citations`).
    pub unknown_citations: Vec<usize>,
    /// The sources given to the model as [1]..[n].
    pub sources: Vec<Citation>,
    /// Everything retrieved, best first, relevant or not.
    #[serde(skip)]
    pub retrieved: Vec<Retrieved>,
    /// `false` when nothing relevant was retrieved and the model was not asked
    /// (`text` is then [`NOTHING_RELEVANT`]).
    pub grounded: bool,
    /// Generation was stopped by the caller; `text` is what came before.
    pub stopped: bool,
    /// The best source was cut short to fit the context.
    pub truncated_source: bool,
    /// Prompt length in the generator's tokens (0 when the model was not asked).
    pub prompt_tokens: usize,
}

/// Answers `question` from what `retriever` finds. Pieces of the answer stream to `on_piece`
/// (returning `false` stops generation); when nothing relevant is found the fixed
/// [`NOTHING_RELEVANT`] text is passed to `on_piece` as one piece and the model is not called.
pub async fn ask<G: Generator, R: Retrieve>(
    gen: &mut G,
    retriever: &R,
    question: &str,
    opts: &AskOptions,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<Answer> {
    let question = non_empty(question)?;
    let retrieved = retriever.retrieve(question).await?;
    answer(gen, retrieved, &[], question, opts, on_piece).await
}

pub(crate) fn non_empty(question: &str) -> Result<&str> {
    let q = question.trim();
    if q.is_empty() {
        return Err(AssistantError::InvalidInput("empty question".into()));
    }
    Ok(q)
}

/// The answer to `question` after `history`, from `retrieved`.
pub(crate) async fn answer<G: Generator>(
    gen: &mut G,
    retrieved: Vec<Retrieved>,
    history: &[Message],
    question: &str,
    opts: &AskOptions,
    on_piece: &mut dyn FnMut(&str) -> bool,
) -> Result<Answer> {
    let relevant: Vec<&Retrieved> = retrieved.iter().filter(|r| r.relevant).collect();
    if relevant.is_empty() {
        on_piece(NOTHING_RELEVANT);
        return Ok(Answer {
            text: NOTHING_RELEVANT.to_string(),
            citations: Vec::new(),
            unknown_citations: Vec::new(),
            sources: Vec::new(),
            retrieved,
            grounded: false,
            stopped: false,
            truncated_source: false,
            prompt_tokens: 0,
        });
    }
    let packed = pack_ask(
        gen,
        ASK_SYSTEM,
        history,
        question,
        &relevant,
        opts.answer_tokens,
    )?;
    let out = run(gen, &packed.prompt, opts.answer_tokens, on_piece).await?;
    let cited = cite::resolve(&out.text, &packed.sources);
    Ok(Answer {
        text: out.text,
        citations: cited.citations,
        unknown_citations: cited.unknown,
        sources: packed.sources,
        retrieved,
        grounded: true,
        stopped: out.stopped,
        truncated_source: packed.truncated,
        prompt_tokens: out.prompt_tokens,
    })
}
