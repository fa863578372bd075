//! `ask`, `summarize` and `chat`: the assistant (`hearth-assistant`) on the real engine — the
//! GPU sentence encoder for retrieval and a Llama-family chat model for answers, sharing one GPU.
//! Answers stream to stdout as they are generated; with `--json` only the final object is
//! printed. Progress and timings go to stderr.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use clap::Args;
use hearth_assistant::{
    ask, summarize, Answer, AskOptions, Chat, ChatOptions, Citation, DocumentText, RetrievalParams,
    Retriever, Step, SummarizeOptions,
};
use hearth_knowledge::{extract, KnowledgeIndex, SourceHint};
use hearth_models::llama::LlamaOptions;
use hearth_models::ChatModel;
use serde::Serialize;

use crate::knowledge::{self, hit_json, print_json, HitJson, ModeArg};
use crate::model;
use crate::run::CliError;

/// Context the assistant works in: room for several sources and a full answer, and well inside
/// SmolLM2's 8k and Llama-3.2's 128k.
const CONTEXT: usize = 4096;

#[derive(Args, Debug)]
pub struct ModelArgs {
    /// Chat model: a .gguf file, a Hugging Face directory or a Hearth pack (default:
    /// SmolLM2-135M-Instruct).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Embedding model directory (default: all-MiniLM-L6-v2).
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// Context window the assistant packs prompts into, in the chat model's tokens.
    #[arg(long, default_value_t = CONTEXT)]
    context: usize,
    /// Print time to first token and tokens per second to stderr.
    #[arg(long)]
    timings: bool,
}

#[derive(Args, Debug)]
pub struct AskArgs {
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    models: ModelArgs,
    /// Chunks retrieved (the relevant ones are packed into the prompt as sources).
    #[arg(short, long, default_value_t = 8)]
    k: usize,
    #[arg(long, value_enum, default_value = "hybrid")]
    mode: ModeArg,
    /// Tokens the answer may take.
    #[arg(long, default_value_t = 384)]
    max_tokens: usize,
    #[arg(long)]
    json: bool,
    #[arg(required = true)]
    question: Vec<String>,
}

#[derive(Args, Debug)]
pub struct SummarizeArgs {
    #[command(flatten)]
    models: ModelArgs,
    #[arg(long)]
    json: bool,
    /// Tokens the summary may take.
    #[arg(long, default_value_t = 384)]
    max_tokens: usize,
    file: PathBuf,
}

#[derive(Args, Debug)]
pub struct ChatArgs {
    #[arg(long)]
    index: PathBuf,
    #[command(flatten)]
    models: ModelArgs,
    #[arg(short, long, default_value_t = 8)]
    k: usize,
}

/// Citations as the CLI prints them.
#[derive(Serialize)]
struct CitationJson<'a> {
    n: usize,
    source: &'a str,
    heading: &'a str,
    page: Option<u32>,
    span: [usize; 2],
}

fn citation_json(c: &Citation) -> CitationJson<'_> {
    CitationJson {
        n: c.n,
        source: &c.source,
        heading: &c.heading,
        page: c.page,
        span: c.span,
    }
}

fn chat_model(gpu: &hearth_gpu::Gpu, m: &ModelArgs) -> Result<ChatModel, CliError> {
    let opts = LlamaOptions {
        max_context: m.context.max(256),
        ..LlamaOptions::default()
    };
    let loaded = model::load_on(gpu, m.model.as_deref(), opts)?;
    Ok(ChatModel::new(
        loaded.model,
        loaded.tokenizer,
        loaded.template,
    ))
}

/// Set by Ctrl-C: the answer being generated stops (the assistant's `on_piece` returns false).
static STOP: AtomicBool = AtomicBool::new(false);

/// First Ctrl-C: stop the current answer; a second one before the next answer starts: quit.
fn stop_on_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!();
            std::process::exit(130);
        }
        eprintln!("\n(stopping — press Ctrl-C again to quit)");
    });
}

/// Streams pieces to stdout (unless `quiet`) and records the time to the first one.
struct Stream {
    quiet: bool,
    start: Instant,
    first: Option<f64>,
    pieces: usize,
}

impl Stream {
    fn new(quiet: bool) -> Self {
        STOP.store(false, Ordering::SeqCst);
        Self {
            quiet,
            start: Instant::now(),
            first: None,
            pieces: 0,
        }
    }
    fn piece(&mut self, p: &str) -> bool {
        if STOP.load(Ordering::SeqCst) {
            return false;
        }
        self.first.get_or_insert(self.start.elapsed().as_secs_f64());
        self.pieces += 1;
        if !self.quiet {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "{p}");
            let _ = out.flush();
        }
        true
    }
    fn report(&self, on: bool, prompt_tokens: usize) {
        if !on {
            return;
        }
        let total = self.start.elapsed().as_secs_f64();
        let ttft = self.first.unwrap_or(total);
        let rate = if self.pieces > 1 {
            (self.pieces - 1) as f64 / (total - ttft).max(1e-9)
        } else {
            0.0
        };
        eprintln!(
            "prompt {prompt_tokens} tokens, time to first token {ttft:.3}s, {} pieces, {rate:.1} pieces/s, {total:.2}s in all",
            self.pieces
        );
    }
}

fn print_sources(out: &mut impl Write, citations: &[Citation]) -> Result<(), CliError> {
    let err = |e: std::io::Error| CliError::Msg(format!("stdout: {e}"));
    for c in citations {
        let page = c.page.map(|p| format!(", page {p}")).unwrap_or_default();
        let heading = if c.heading.is_empty() {
            String::new()
        } else {
            format!(" › {}", c.heading)
        };
        writeln!(
            out,
            "  [{}] {}{heading}{page} ({}, bytes {}–{})",
            c.n, c.title, c.source, c.span[0], c.span[1]
        )
        .map_err(err)?;
    }
    Ok(())
}

/// What `ask` and `chat` work with: the index, the encoder that searches it and the chat model,
/// the two models on one GPU.
struct Session {
    index: KnowledgeIndex,
    encoder: knowledge::Encoder,
    gen: ChatModel,
}

impl Session {
    fn open(dir: &std::path::Path, models: &ModelArgs) -> Result<Self, CliError> {
        stop_on_ctrl_c();
        let index = knowledge::existing_index(dir)?;
        let gpu = model::gpu()?;
        let encoder = knowledge::load_encoder_on(&gpu, models.encoder.as_deref())?;
        knowledge::check_dim(&index, dir, &encoder)?;
        let gen = chat_model(&gpu, models)?;
        Ok(Self {
            index,
            encoder,
            gen,
        })
    }
}

/// Hybrid (or `mode`) retrieval of `k` chunks from the session's index.
fn retriever<'a>(
    index: &'a KnowledgeIndex,
    encoder: &'a knowledge::Encoder,
    k: usize,
    mode: hearth_knowledge::Mode,
) -> Retriever<'a, knowledge::Encoder> {
    Retriever::new(index, encoder).with_params(RetrievalParams {
        k,
        mode,
        ..RetrievalParams::default()
    })
}

pub fn ask_cmd(args: &AskArgs) -> Result<(), CliError> {
    let Session {
        index,
        encoder,
        mut gen,
    } = Session::open(&args.index, &args.models)?;
    let retriever = retriever(&index, &encoder, args.k, args.mode.into());
    let question = args.question.join(" ");
    let opts = AskOptions {
        answer_tokens: args.max_tokens,
    };
    let mut stream = Stream::new(args.json);
    let answer = pollster::block_on(ask(&mut gen, &retriever, &question, &opts, &mut |p| {
        stream.piece(p)
    }))?;
    stream.report(args.models.timings, answer.prompt_tokens);
    let mut out = std::io::stdout().lock();
    if args.json {
        print_json(&mut out, &AskJson::new(&index, &answer))?;
    } else {
        let _ = writeln!(out);
        if !answer.citations.is_empty() {
            let _ = writeln!(out, "\nSources:");
            print_sources(&mut out, &answer.citations)?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct AskJson<'a> {
    answer: &'a str,
    citations: Vec<CitationJson<'a>>,
    retrieved: Vec<HitJson<'a>>,
    /// The answer cited nothing itself; the model was then asked which source it used.
    cited_on_request: bool,
}

impl<'a> AskJson<'a> {
    fn new(index: &'a KnowledgeIndex, a: &'a Answer) -> Self {
        Self {
            answer: &a.text,
            citations: a.citations.iter().map(citation_json).collect(),
            retrieved: a
                .retrieved
                .iter()
                .filter_map(|r| hit_json(index, &r.hit))
                .collect(),
            cited_on_request: a.cited_on_request,
        }
    }
}

pub fn summarize_cmd(args: &SummarizeArgs) -> Result<(), CliError> {
    stop_on_ctrl_c();
    let path = &args.file;
    let bytes = std::fs::read(path).map_err(|source| CliError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let doc = extract(&bytes, SourceHint::new(path.display().to_string()))?;
    let text = DocumentText::from_document(&doc, &path.display().to_string());
    let gpu = model::gpu()?;
    let mut gen = chat_model(&gpu, &args.models)?;
    let opts = SummarizeOptions {
        summary_tokens: args.max_tokens,
        ..SummarizeOptions::default()
    };
    let mut stream = Stream::new(args.json);
    let mut on_step = |s: Step| {
        if STOP.load(Ordering::SeqCst) {
            return false;
        }
        match s {
            Step::Map { group, of } => eprintln!("summarizing part {group} of {of} …"),
            Step::Reduce { round, group, of } => {
                eprintln!("combining summaries (round {round}, {group} of {of}) …")
            }
            Step::Final => eprintln!("writing the summary …"),
        }
        true
    };
    let summary = pollster::block_on(summarize(&mut gen, &text, &opts, &mut on_step, &mut |p| {
        stream.piece(p)
    }))?;
    stream.report(args.models.timings, 0);
    let mut out = std::io::stdout().lock();
    if args.json {
        #[derive(Serialize)]
        struct SummaryJson<'a> {
            summary: &'a str,
            citations: Vec<CitationJson<'a>>,
        }
        print_json(
            &mut out,
            &SummaryJson {
                summary: &summary.text,
                citations: summary.citations.iter().map(citation_json).collect(),
            },
        )?;
    } else {
        let _ = writeln!(out);
        if !summary.citations.is_empty() {
            let _ = writeln!(out, "\nSections cited:");
            print_sources(&mut out, &summary.citations)?;
        }
        eprintln!("({} model calls)", summary.calls);
    }
    Ok(())
}

pub fn chat_cmd(args: &ChatArgs) -> Result<(), CliError> {
    let Session {
        index,
        encoder,
        mut gen,
    } = Session::open(&args.index, &args.models)?;
    let retriever = retriever(&index, &encoder, args.k, hearth_knowledge::Mode::Hybrid);
    let mut chat = Chat::new(ChatOptions::default());
    eprintln!(
        "chatting over {} documents ({} chunks). /sources lists the last answer's sources, /clear \
         forgets the conversation, /quit ends; Ctrl-C stops an answer.",
        index.documents().count(),
        index.chunk_count()
    );
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        eprint!("\n> ");
        let _ = std::io::stderr().flush();
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| CliError::Msg(format!("stdin: {e}")))?;
        let line = line.trim();
        match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/clear" => {
                chat.clear();
                eprintln!("(conversation cleared)");
                continue;
            }
            "/sources" => {
                let mut out = std::io::stdout().lock();
                if chat.sources().is_empty() {
                    let _ = writeln!(out, "(no sources yet)");
                }
                print_sources(&mut out, chat.sources())?;
                continue;
            }
            _ => {}
        }
        let mut stream = Stream::new(false);
        let turn =
            pollster::block_on(chat.ask(&mut gen, &retriever, line, &mut |p| stream.piece(p)));
        match turn {
            Ok(t) => {
                stream.report(args.models.timings, t.answer.prompt_tokens);
                let n = t.answer.citations.len();
                println!();
                if n > 0 {
                    eprintln!("({n} source{} — /sources)", if n == 1 { "" } else { "s" });
                }
            }
            // One failed turn (a model error, an oversized question) does not end the session.
            Err(e) => eprintln!("error: {e}"),
        }
    }
    Ok(())
}
