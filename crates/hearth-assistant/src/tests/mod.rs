//! End-to-end tests of the assistant with deterministic fakes: a hashed bag-of-words embedder
//! over a real `KnowledgeIndex` built by the real ingest path, and a scripted generator that
//! counts whitespace words as tokens, records every prompt, and refuses any prompt that would
//! not fit its context (so every test also checks the budgets).
#![allow(clippy::unwrap_used)]

mod ask;
mod chat;
mod summarize;

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use hearth_knowledge::ingest::{ingest, IngestOptions};
use hearth_knowledge::{
    ApproxTokenCounter, Embedder, IndexParams, KnowledgeIndex, SourceHint, TokenCounter,
};

use crate::generator::{Generator, Message, Role};
use crate::{AssistantError, Result};

/// The fakes' futures are ready at once; poll until they are.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// Hashed bag of words → unit vector.
pub struct BagOfWords {
    pub dim: usize,
}

impl BagOfWords {
    pub fn vector(&self, text: &str) -> Vec<f32> {
        hearth_knowledge::testing::bag_of_words(text, self.dim)
    }
}

impl Embedder for BagOfWords {
    fn dim(&self) -> usize {
        self.dim
    }
    fn max_tokens(&self) -> usize {
        64
    }
    fn count_tokens(&self, text: &str) -> usize {
        ApproxTokenCounter.count(text)
    }
    async fn embed(&self, texts: &[&str]) -> hearth_knowledge::Result<Vec<Vec<f32>>> {
        Ok(texts.iter().map(|t| self.vector(t)).collect())
    }
}

/// Scripted chat model: `respond` writes the reply to a prompt; replies stream word by word.
pub struct FakeGen {
    pub context_len: usize,
    /// Every prompt generated from, with its `max_tokens`.
    pub calls: Vec<(String, usize)>,
    /// Pieces emitted in total.
    pub pieces: usize,
    respond: Box<dyn FnMut(&str) -> String>,
}

impl FakeGen {
    pub fn new(context_len: usize, respond: impl FnMut(&str) -> String + 'static) -> Self {
        FakeGen {
            context_len,
            calls: Vec::new(),
            pieces: 0,
            respond: Box::new(respond),
        }
    }

    pub fn prompts(&self) -> Vec<&str> {
        self.calls.iter().map(|(p, _)| p.as_str()).collect()
    }
}

pub fn words(text: &str) -> usize {
    text.split_whitespace().count()
}

/// The user part of a fake-rendered prompt (after the last user marker).
pub fn user_part(prompt: &str) -> &str {
    let start = prompt.rfind("<|user|>").unwrap_or(0);
    let end = prompt.rfind("<|assistant|>").unwrap_or(prompt.len());
    &prompt[start..end.max(start)]
}

impl Generator for FakeGen {
    fn context_len(&self) -> usize {
        self.context_len
    }
    fn count_tokens(&self, text: &str) -> usize {
        words(text)
    }
    fn render(&self, messages: &[Message]) -> Result<String> {
        let mut s = String::new();
        for m in messages {
            let role = match m.role {
                Role::System => "system",
                Role::User => "user",
                Role::Assistant => "assistant",
            };
            s.push_str(&format!("<|{role}|>\n{}\n", m.content));
        }
        s.push_str("<|assistant|>\n");
        Ok(s)
    }
    /// The option the scripted reply starts with (the first option when none does).
    async fn choose(&mut self, prompt: &str, options: &[&str]) -> Result<usize> {
        if words(prompt) >= self.context_len || options.is_empty() {
            return Err(AssistantError::Generator(
                "choose: no room or no options".into(),
            ));
        }
        self.calls.push((prompt.to_string(), 0));
        let reply = (self.respond)(prompt);
        Ok(options
            .iter()
            .position(|o| reply.trim_start().starts_with(o))
            .unwrap_or(0))
    }
    async fn generate(
        &mut self,
        prompt: &str,
        max_tokens: usize,
        on_piece: &mut dyn FnMut(&str) -> bool,
    ) -> Result<String> {
        if words(prompt) + max_tokens > self.context_len || max_tokens == 0 {
            return Err(AssistantError::Generator(format!(
                "prompt of {} tokens + {max_tokens} exceeds context {}",
                words(prompt),
                self.context_len
            )));
        }
        self.calls.push((prompt.to_string(), max_tokens));
        let reply = (self.respond)(prompt);
        let mut out = String::new();
        for (i, w) in reply.split_whitespace().take(max_tokens).enumerate() {
            let piece = if i == 0 {
                w.to_string()
            } else {
                format!(" {w}")
            };
            out.push_str(&piece);
            self.pieces += 1;
            if !on_piece(&piece) {
                break;
            }
        }
        Ok(out)
    }
}

pub const OTTERS: &str = "# Sea otters

## Diet

Sea otters eat sea urchins, crabs, clams and abalone. An adult otter eats about a quarter of \
its body weight in seafood every day, and uses stones as tools to crack open shells while \
floating on its back.

## Habitat

Sea otters live in shallow coastal waters of the northern Pacific Ocean, in kelp forests \
where they wrap themselves in kelp fronds to sleep without drifting away.

## Fur

Sea otters have the densest fur of any animal, with up to a million hairs per square inch, \
which keeps them warm because they have no blubber.
";

pub const RUST: &str = "# Ownership in Rust

## The rules

Each value in Rust has an owner. There can only be one owner at a time. When the owner goes \
out of scope, the value will be dropped.

## Borrowing

A reference lets a function borrow a value without taking ownership of it. The borrow \
checker makes sure references never outlive the value they point to.
";

pub const BREAD: &str = "# Sourdough bread

## Starter

A sourdough starter is a culture of wild yeast and lactic acid bacteria fed with flour and \
water. Feed the starter daily and keep it at room temperature.

## Baking

Bake the loaf in a covered pot at a high temperature so that the steam lets the crust expand \
before it hardens.
";

/// An index of the three documents above (plus `extra`), built by the real ingest path.
pub fn library(extra: &[(&str, &str)]) -> (KnowledgeIndex, BagOfWords) {
    let e = BagOfWords { dim: 512 };
    let mut index = KnowledgeIndex::new(e.dim, IndexParams::default()).unwrap();
    let docs = [
        ("/docs/otters.md", OTTERS),
        ("/docs/rust.md", RUST),
        ("/docs/bread.md", BREAD),
    ];
    for (path, text) in docs.iter().chain(extra) {
        block_on(ingest(
            &mut index,
            &e,
            SourceHint::new(*path),
            text.as_bytes(),
            0,
            &IngestOptions::default(),
            &mut |_| {},
        ))
        .unwrap();
    }
    (index, e)
}

/// The numbers `n` of the `<source id="n"` blocks in the user part of `prompt` whose text
/// contains `needle`.
pub fn sources_containing(prompt: &str, needle: &str) -> Vec<usize> {
    source_blocks(prompt)
        .into_iter()
        .filter(|(_, body)| body.contains(needle))
        .map(|(n, _)| n)
        .collect()
}

/// (n, body) of every source block of the prompt's user part, checking that each opens once
/// and closes once (no block inside another).
pub fn source_blocks(prompt: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut rest = user_part(prompt);
    while let Some(i) = rest.find("<source id=\"") {
        let after = &rest[i + 12..];
        let n: usize = after[..after.find('"').unwrap()].parse().unwrap();
        let close = after.find("</source>").expect("block closes");
        let body = &after[..close];
        assert!(!body.contains("<source"), "block {n} opens another: {body}");
        out.push((n, body.to_string()));
        rest = &after[close + 9..];
    }
    assert!(
        !rest.contains("</source>"),
        "a close without an open: {rest}"
    );
    out
}
