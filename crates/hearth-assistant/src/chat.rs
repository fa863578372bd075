//! Chat: a multi-turn conversation over the documents. Each follow-up question is rewritten
//! into a standalone retrieval query using the history ("what do they eat?" after a question
//! about otters → "what do otters eat?"), then answered like an ask with the latest turns of
//! the conversation in the prompt, trimmed from the oldest to fit the budget.

use crate::ask::{answer, non_empty, Answer, AskOptions};
use crate::cite::{self, Citation};
use crate::generator::{measure, run, Generator, Message};
use crate::pack::input_budget;
use crate::prompt::{ask_user, quote, ASK_SYSTEM, REWRITE_SYSTEM};
use crate::retrieve::Retrieve;
use crate::Result;

/// Longest standalone query kept, in bytes (a model that starts answering is cut off).
const MAX_QUERY_BYTES: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChatOptions {
    pub ask: AskOptions,
    /// Most tokens of earlier turns in an answer prompt. Also capped at half of what the
    /// instructions and question leave, so the sources always keep at least half.
    pub history_tokens: usize,
    /// Tokens generated at most for the standalone query.
    pub rewrite_tokens: usize,
}

impl Default for ChatOptions {
    fn default() -> Self {
        ChatOptions {
            ask: AskOptions::default(),
            history_tokens: 1024,
            rewrite_tokens: 64,
        }
    }
}

/// One exchange.
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    pub question: String,
    /// The standalone query retrieval used (the question itself on the first turn).
    pub query: String,
    pub answer: Answer,
}

/// A conversation's state. The generator and retriever are passed to each call, so one
/// loaded model can serve several conversations.
#[derive(Clone, Debug, Default)]
pub struct Chat {
    turns: Vec<Turn>,
    pub opts: ChatOptions,
}

impl Chat {
    pub fn new(opts: ChatOptions) -> Self {
        Chat {
            turns: Vec::new(),
            opts,
        }
    }

    pub fn turns(&self) -> &[Turn] {
        &self.turns
    }

    /// The last answer's citations (the `/sources` command).
    pub fn sources(&self) -> &[Citation] {
        self.turns.last().map_or(&[], |t| &t.answer.citations)
    }

    /// Forgets the conversation.
    pub fn clear(&mut self) {
        self.turns.clear();
    }

    /// Drops the last turn (to answer its question afresh) and returns it.
    pub fn pop(&mut self) -> Option<Turn> {
        self.turns.pop()
    }

    /// Answers `question` in the context of the conversation and records the turn. Pieces
    /// stream to `on_piece` as in [`crate::ask`].
    pub async fn ask<G: Generator, R: Retrieve>(
        &mut self,
        gen: &mut G,
        retriever: &R,
        question: &str,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<&Turn> {
        let question = non_empty(question)?;
        let query = self.standalone_query(gen, question).await?;
        let retrieved = retriever.retrieve(&query).await?;
        let history = self.history_for(gen, question)?;
        let answer = answer(gen, retrieved, &history, question, &self.opts.ask, on_piece).await?;
        let i = self.turns.len();
        self.turns.push(Turn {
            question: question.to_string(),
            query,
            answer,
        });
        Ok(&self.turns[i])
    }

    /// `question` rewritten as a standalone retrieval query using the conversation; the
    /// question itself when there is no history (no generator call) or the rewrite is empty.
    pub async fn standalone_query<G: Generator>(
        &self,
        gen: &mut G,
        question: &str,
    ) -> Result<String> {
        if self.turns.is_empty() {
            return Ok(question.to_string());
        }
        let build = |turns: &[Turn]| {
            let mut convo = String::from("Conversation:\n\n");
            for t in turns {
                convo.push_str(&format!(
                    "User: {}\nAssistant: {}\n\n",
                    quote(&t.question),
                    quote(cite::strip(&t.answer.text).trim())
                ));
            }
            convo.push_str(&format!(
                "Follow-up question: {}\n\nStandalone query:",
                quote(question)
            ));
            measure(
                gen,
                &[Message::system(REWRITE_SYSTEM), Message::user(convo)],
            )
        };
        let budget = input_budget(gen, self.opts.rewrite_tokens);
        let cap = self.opts.history_tokens;
        let bare = build(&[])?;
        let mut prompt = None;
        for k in 1..=self.turns.len() {
            let p = build(&self.turns[self.turns.len() - k..])?;
            if p.tokens > budget || p.tokens - bare.tokens.min(p.tokens) > cap {
                break;
            }
            prompt = Some(p);
        }
        // Not even the last turn fits: there is nothing to resolve the question against.
        let Some(prompt) = prompt else {
            return Ok(question.to_string());
        };
        let out = run(gen, &prompt, self.opts.rewrite_tokens, &mut |_| true).await?;
        Ok(clean_query(&out.text).unwrap_or_else(|| question.to_string()))
    }

    /// The latest turns as messages, as many as fit the history budget for `question`.
    fn history_for<G: Generator>(&self, gen: &G, question: &str) -> Result<Vec<Message>> {
        let build = |history: &[Message]| {
            let mut m = vec![Message::system(ASK_SYSTEM)];
            m.extend_from_slice(history);
            m.push(Message::user(ask_user(&[], question)));
            measure(gen, &m)
        };
        let base = build(&[])?.tokens;
        let room = input_budget(gen, self.opts.ask.answer_tokens).saturating_sub(base);
        let cap = self.opts.history_tokens.min(room / 2);
        let mut kept: Vec<Message> = Vec::new();
        for t in self.turns.iter().rev() {
            let mut with = vec![
                Message::user(t.question.clone()),
                Message::assistant(cite::strip(&t.answer.text).trim().to_string()),
            ];
            with.extend(kept.iter().cloned());
            if build(&with)?.tokens.saturating_sub(base) > cap {
                break;
            }
            kept = with;
        }
        Ok(kept)
    }
}

/// The query in a model's rewrite: its first non-empty line, without a label or quotes.
fn clean_query(text: &str) -> Option<String> {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let mut q = line;
    for label in ["standalone query:", "query:", "search query:"] {
        if let Some(rest) = q
            .get(..label.len())
            .filter(|head| head.eq_ignore_ascii_case(label))
            .and_then(|_| q.get(label.len()..))
        {
            q = rest.trim();
        }
    }
    let q = q.trim_matches(|c: char| c == '"' || c == '\'' || c == '“' || c == '”' || c == '`');
    let mut end = q.len().min(MAX_QUERY_BYTES);
    while !q.is_char_boundary(end) {
        end -= 1;
    }
    let q = q[..end].trim();
    (!q.is_empty()).then(|| q.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn clean_query_takes_the_first_line_without_labels() {
        assert_eq!(
            clean_query("\n  Query: \"what do otters eat?\"\nmore").as_deref(),
            Some("what do otters eat?")
        );
        assert_eq!(clean_query("Standalone query: x").as_deref(), Some("x"));
        assert_eq!(clean_query("  \n \"\" "), None);
        assert_eq!(
            clean_query(&"é".repeat(600)).unwrap().len(),
            MAX_QUERY_BYTES
        );
    }
}
