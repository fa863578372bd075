use super::*;
use crate::{cite, AskOptions, Chat, ChatOptions, Retriever};

const REWRITE_MARK: &str = "standalone search query";

/// Rewrites follow-ups to `rewrite`; answers citing the sources that answer the question
/// (kelp for where otters live, urchins for what they eat), padded with `filler` words.
fn chatbot(rewrite: &'static str, filler: usize) -> impl FnMut(&str) -> String {
    move |prompt| {
        if prompt.contains(REWRITE_MARK) {
            return format!("Query: {rewrite}");
        }
        let question = &prompt[prompt.rfind("Question: ").unwrap()..];
        let needle = if question.contains("live") {
            "kelp"
        } else if question.contains("eat") {
            "urchins"
        } else {
            "Question number"
        };
        let marks: String = sources_containing(prompt, needle)
            .iter()
            .map(|n| format!("[{n}]"))
            .collect();
        format!("About {needle} {marks}.{}", " more".repeat(filler))
    }
}

#[test]
fn follow_ups_are_rewritten_with_the_history() {
    let (index, e) = library(&[]);
    let r = Retriever::new(&index, &e);
    let mut gen = FakeGen::new(2048, chatbot("what do sea otters eat", 0));
    let mut chat = Chat::new(ChatOptions::default());

    // First turn: nothing to resolve, so no rewrite call.
    let t = block_on(chat.ask(&mut gen, &r, "Where do sea otters live?", &mut |_| true)).unwrap();
    assert_eq!(t.query, "Where do sea otters live?");
    assert!(
        t.answer.text.starts_with("About kelp ["),
        "{}",
        t.answer.text
    );
    let first_answer = t.answer.text.clone();
    assert_eq!(gen.calls.len(), 1);
    assert!(!gen.calls[0].0.contains(REWRITE_MARK));

    // Follow-up: rewritten from the history, then answered from what the rewrite retrieves.
    let t = block_on(chat.ask(&mut gen, &r, "And what do they eat?", &mut |_| true)).unwrap();
    assert_eq!(t.query, "what do sea otters eat");
    assert_eq!(gen.calls.len(), 3);
    let rewrite = &gen.calls[1].0;
    assert!(rewrite.contains(REWRITE_MARK));
    assert!(rewrite.contains("Where do sea otters live?"));
    assert!(rewrite.contains("Follow-up question: And what do they eat?"));
    let answer_prompt = &gen.calls[2].0;
    assert!(!sources_containing(answer_prompt, "urchins").is_empty());
    // The history is in the answer prompt, its old citation numbers stripped.
    assert!(answer_prompt.contains("<|user|>\nWhere do sea otters live?\n"));
    let stripped = cite::strip(&first_answer);
    assert_ne!(stripped, first_answer);
    assert!(answer_prompt.contains(&format!("<|assistant|>\n{stripped}\n")));
    assert!(answer_prompt.ends_with("Question: And what do they eat?\n<|assistant|>\n"));

    // `/sources`: the last answer's citations.
    let sources = chat.sources();
    assert!(!sources.is_empty());
    assert_eq!(sources, &chat.turns()[1].answer.citations[..]);
    assert!(sources.iter().all(|c| c.heading.ends_with("Diet")));
    assert_eq!(chat.turns().len(), 2);
    chat.clear();
    assert!(chat.sources().is_empty());
}

#[test]
fn history_is_trimmed_from_the_oldest_turn() {
    let extra: Vec<(String, String)> = (0..8)
        .map(|i| {
            (
                format!("/docs/q{i}.md"),
                format!("# Note {i}\n\nQuestion number {i} is about sea otters and kelp.\n"),
            )
        })
        .collect();
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (index, e) = library(&extra);
    let r = Retriever::new(&index, &e);
    let context = 900;
    let opts = ChatOptions {
        ask: AskOptions { answer_tokens: 60 },
        history_tokens: 10_000,
        rewrite_tokens: 16,
    };
    let mut gen = FakeGen::new(context, chatbot("sea otters", 50));
    let mut chat = Chat::new(opts);
    for i in 0..8 {
        let q = format!("Question number {i} about sea otters?");
        block_on(chat.ask(&mut gen, &r, &q, &mut |_| true)).unwrap();
    }
    for (p, max_tokens) in &gen.calls {
        assert!(words(p) + max_tokens <= context);
    }
    // The last answer prompt keeps a suffix of the conversation: the newest turns.
    let last = &gen.calls.last().unwrap().0;
    let history = &last[..last.rfind("<|user|>").unwrap()];
    let kept: Vec<usize> = (0..7)
        .filter(|i| history.contains(&format!("<|user|>\nQuestion number {i} about")))
        .collect();
    assert!(!kept.is_empty(), "some history kept");
    assert!(!kept.contains(&0), "the oldest turn was trimmed: {kept:?}");
    assert_eq!(kept, (kept[0]..7).collect::<Vec<_>>(), "a suffix");
    // The history takes at most half of what instructions and question leave for it and sources.
    let turns = history.matches("<|user|>").count();
    assert_eq!(turns, kept.len());
    assert!(words(history) < (context - 60) / 2 + words(crate::prompt::ASK_SYSTEM) + 2);
    // And the sources still got room.
    assert!(!source_blocks(last).is_empty());
}

#[test]
fn a_stopped_answer_is_kept_in_the_history() {
    let (index, e) = library(&[]);
    let r = Retriever::new(&index, &e);
    let mut gen = FakeGen::new(2048, chatbot("what do sea otters eat", 10));
    let mut chat = Chat::new(ChatOptions::default());
    let mut n = 0;
    let t = block_on(
        chat.ask(&mut gen, &r, "Where do sea otters live?", &mut |_| {
            n += 1;
            n < 2
        }),
    )
    .unwrap();
    assert!(t.answer.stopped);
    assert_eq!(t.answer.text, "About kelp");
    assert_eq!(gen.pieces, 2);
    assert_eq!(chat.turns().len(), 1);
}
