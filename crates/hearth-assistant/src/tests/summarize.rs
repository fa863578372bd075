use hearth_knowledge::{extract, Document, SourceHint};

use super::*;
use crate::cite;
use crate::{summarize, DocumentText, Step, SummarizeOptions, Summary};

/// Cites the lowest and highest section the prompt holds (as sources, or as citations inside
/// earlier summaries), padded with `filler` words.
fn summarizer(filler: usize) -> impl FnMut(&str) -> String {
    move |prompt| {
        let user = user_part(prompt);
        let mut ns = cite::parse(user);
        ns.extend(source_blocks(prompt).iter().map(|b| b.0));
        let (lo, hi) = (ns.iter().min().unwrap(), ns.iter().max().unwrap());
        format!("Summary from [{lo}] to [{hi}].{}", " filler".repeat(filler))
    }
}

fn long_markdown(sections: usize, words: usize) -> String {
    let mut s = String::from("# Long report\n\n");
    for i in 0..sections {
        s.push_str(&format!("## Section {i}\n\n"));
        for j in 0..words {
            s.push_str(&format!("m{i}x{j} "));
        }
        if i + 1 == sections {
            s.push_str("zebraword");
        }
        s.push_str("\n\n");
    }
    s
}

/// Whether some prompt holds the word `w`.
fn read(prompts: &[&str], w: &str) -> bool {
    prompts.iter().any(|p| p.split_whitespace().any(|x| x == w))
}

fn doc(md: &str) -> Document {
    extract(md.as_bytes(), SourceHint::new("/docs/long.md")).unwrap()
}

fn run(
    gen: &mut FakeGen,
    d: &DocumentText,
    opts: &SummarizeOptions,
    steps: &mut Vec<Step>,
) -> Result<Summary> {
    block_on(summarize(
        gen,
        d,
        opts,
        &mut |s| {
            steps.push(s);
            true
        },
        &mut |_| true,
    ))
}

#[test]
fn sections_come_from_headings_with_exact_spans() {
    let d = extract(OTTERS.as_bytes(), SourceHint::new("/docs/otters.md")).unwrap();
    let t = DocumentText::from_document(&d, "/docs/otters.md");
    let headings: Vec<&str> = t.sections.iter().map(|s| s.heading.as_str()).collect();
    assert_eq!(
        headings,
        [
            "Sea otters › Diet",
            "Sea otters › Habitat",
            "Sea otters › Fur"
        ]
    );
    for s in &t.sections {
        assert_eq!(d.text[s.span[0]..s.span[1]], s.text);
    }
    assert!(t.sections[2].text.contains("blubber"));
}

#[test]
fn a_short_document_is_summarized_in_one_pass() {
    let d = extract(OTTERS.as_bytes(), SourceHint::new("/docs/otters.md")).unwrap();
    let t = DocumentText::from_document(&d, "/docs/otters.md");
    let mut gen = FakeGen::new(4096, summarizer(0));
    let mut steps = Vec::new();
    let s = run(&mut gen, &t, &SummarizeOptions::default(), &mut steps).unwrap();
    assert_eq!(s.calls, 1);
    assert_eq!(steps, [Step::Final]);
    for sec in &t.sections {
        assert!(gen.calls[0].0.contains(sec.text.trim()));
    }
    let ns: Vec<usize> = s.citations.iter().map(|c| c.n).collect();
    assert_eq!(ns, [1, 3]);
    assert_eq!(s.citations[1].heading, "Sea otters › Fur");
    assert_eq!(s.citations[1].source, "/docs/otters.md");
}

#[test]
fn map_reduce_reads_to_the_end_and_keeps_section_citations() {
    let d = doc(&long_markdown(60, 50));
    let t = DocumentText::from_document(&d, "/docs/long.md");
    assert_eq!(t.sections.len(), 60);
    let opts = SummarizeOptions {
        summary_tokens: 60,
        part_tokens: 30,
    };
    let context = 400;
    let mut gen = FakeGen::new(context, summarizer(20));
    let mut steps = Vec::new();
    let s = run(&mut gen, &t, &opts, &mut steps).unwrap();

    assert!(!s.stopped);
    assert_eq!(s.calls, gen.calls.len());
    assert!(matches!(steps.first(), Some(Step::Map { group: 1, .. })));
    assert!(
        steps.iter().any(|s| matches!(s, Step::Reduce { .. })),
        "summaries did not fit one prompt: {steps:?}"
    );
    assert_eq!(steps.last(), Some(&Step::Final));
    // Every prompt fitted the context with room for its reply.
    for (p, max_tokens) in &gen.calls {
        assert!(
            words(p) + max_tokens <= context,
            "{} + {max_tokens}",
            words(p)
        );
    }
    // The whole document reached the model, the end included.
    let prompts = gen.prompts();
    for i in 0..60 {
        for j in [0, 49] {
            let w = format!("m{i}x{j}");
            assert!(read(&prompts, &w), "{w} never read");
        }
    }
    assert!(prompts.iter().any(|p| p.contains("zebraword")));
    // The final prompt works from summaries.
    let last = user_part(prompts.last().unwrap());
    assert!(last.contains("<summary part=\"1\"") && !last.contains("<source"));
    // Citations survive map and reduce, back to the first and the last section.
    assert_eq!(s.sections.len(), 60);
    let ns: Vec<usize> = s.citations.iter().map(|c| c.n).collect();
    assert_eq!(ns, [1, 60], "{}", s.text);
    let end = &s.citations[1];
    assert_eq!(end.heading, "Long report › Section 59");
    assert!(d.text[end.span[0]..end.span[1]].contains("zebraword"));
}

#[test]
fn an_oversized_section_is_split_into_parts() {
    let d = doc(&long_markdown(1, 600));
    let t = DocumentText::from_document(&d, "/docs/long.md");
    let opts = SummarizeOptions {
        summary_tokens: 40,
        part_tokens: 20,
    };
    let context = 300;
    let mut gen = FakeGen::new(context, summarizer(5));
    let mut steps = Vec::new();
    let s = run(&mut gen, &t, &opts, &mut steps).unwrap();
    assert!(s.sections.len() > 3, "{}", s.sections.len());
    let section = &t.sections[0];
    assert_eq!(s.sections[0].span[0], section.span[0]);
    assert_eq!(s.sections.last().unwrap().span[1], section.span[1]);
    for (k, pair) in s.sections.windows(2).enumerate() {
        let gap = &d.text[pair[0].span[1]..pair[1].span[0]];
        assert!(gap.trim().is_empty(), "parts leave out {gap:?}");
        assert_eq!(
            pair[0].heading,
            format!("Long report › Section 0 (part {})", k + 1)
        );
    }
    for (p, max_tokens) in &gen.calls {
        assert!(words(p) + max_tokens <= context);
    }
    for j in 0..600 {
        let w = format!("m0x{j}");
        assert!(read(&gen.prompts(), &w), "{w} never read");
    }
    assert!(gen.prompts().iter().any(|p| p.contains("zebraword")));
    assert_eq!(
        s.citations.last().map(|c| c.n),
        Some(s.sections.len()),
        "{}",
        s.text
    );
}

#[test]
fn sections_from_chunks_drop_the_overlap() {
    let md = long_markdown(4, 120);
    let (index, _) = library(&[("/docs/long.md", &md)]);
    let meta = index.document_by_path("/docs/long.md").unwrap();
    let chunks: Vec<_> = meta
        .chunks
        .iter()
        .map(|c| index.chunk(*c).unwrap())
        .collect();
    assert!(chunks.len() > 8, "several overlapping chunks per section");
    let t = DocumentText::from_chunks("/docs/long.md", &meta.title, chunks.iter().copied());
    let d = doc(&md);
    assert_eq!(t.sections.len(), 4);
    for (i, s) in t.sections.iter().enumerate() {
        assert_eq!(d.text[s.span[0]..s.span[1]], s.text);
        assert_eq!(s.heading, format!("Long report › Section {i}"));
        for j in 0..120 {
            let w = format!("m{i}x{j}");
            assert_eq!(
                s.text.split_whitespace().filter(|x| *x == w).count(),
                1,
                "{w}"
            );
        }
    }
}

#[test]
fn cancelling_between_steps_returns_what_there_is() {
    let d = doc(&long_markdown(60, 50));
    let t = DocumentText::from_document(&d, "/docs/long.md");
    let opts = SummarizeOptions {
        summary_tokens: 60,
        part_tokens: 30,
    };
    let mut gen = FakeGen::new(400, summarizer(0));
    let s = block_on(summarize(
        &mut gen,
        &t,
        &opts,
        &mut |s| s != Step::Map { group: 2, of: 15 } && !matches!(s, Step::Map { group: 3.., .. }),
        &mut |_| true,
    ))
    .unwrap();
    assert!(s.stopped);
    assert_eq!(s.calls, 1);
    assert!(s.text.starts_with("Summary from [1] to ["), "{}", s.text);
}

#[test]
fn an_empty_document_is_refused() {
    let t = DocumentText {
        source: "/x".into(),
        title: String::new(),
        sections: Vec::new(),
    };
    let mut gen = FakeGen::new(400, summarizer(0));
    let mut steps = Vec::new();
    assert!(matches!(
        run(&mut gen, &t, &SummarizeOptions::default(), &mut steps),
        Err(AssistantError::InvalidInput(_))
    ));
}
