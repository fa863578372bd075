//! Ask: retrieve, keep the relevant chunks, pack the best into the context as numbered
//! sources, generate a cited answer, map its citations back to the chunks.

use serde::Serialize;

use crate::cite::{self, Citation};
use crate::generator::{run, Generator, Message, Prompt};
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
    /// The answer cited nothing by itself, so the model was asked which source supports it
    /// (see [`ask_for_citation`]) and its choice was appended as ` [n]`.
    pub cited_on_request: bool,
}

/// Small models often answer from the sources without writing `[n]`. Then the model itself is
/// asked which source its answer came from: the same prompt and answer, continued with
/// `Source: [`, and the source number it ranks highest next (a constrained choice among the
/// numbers given, at most 9 so that each is one token) becomes the citation, marked as asked for
/// ([`Answer::cited_on_request`]). The model chooses; the assistant attributes nothing itself.
async fn ask_for_citation<G: Generator>(
    gen: &mut G,
    prompt: &Prompt,
    answer: &str,
    sources: usize,
) -> Result<Option<usize>> {
    let text = format!("{}{}\n\nSource: [", prompt.text, answer.trim_end());
    let numbers: Vec<String> = (1..=sources.min(9)).map(|n| n.to_string()).collect();
    if numbers.is_empty() || gen.count_tokens(&text) >= gen.context_len() {
        return Ok(None);
    }
    let options: Vec<&str> = numbers.iter().map(String::as_str).collect();
    let i = gen.choose(&text, &options).await?;
    Ok((i < options.len()).then_some(i + 1))
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
            cited_on_request: false,
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
    let mut out = run(gen, &packed.prompt, opts.answer_tokens, on_piece).await?;
    let mut cited = cite::resolve(&out.text, &packed.sources);
    let mut cited_on_request = false;
    if cited.citations.is_empty() && !out.stopped && !out.text.trim().is_empty() {
        let n = packed.sources.len();
        if let Some(k) = ask_for_citation(gen, &packed.prompt, &out.text, n).await? {
            let mark = format!(" [{k}]");
            on_piece(&mark);
            out.text = format!("{}{mark}", out.text.trim_end());
            cited = cite::resolve(&out.text, &packed.sources);
            cited_on_request = true;
        }
    }
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
        cited_on_request,
    })
}
