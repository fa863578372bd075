//! `hearth`: the command-line face of the engine. With `--json`, stdout carries only the JSON object;
//! progress and logs go to stderr.

mod assistant;
mod bench;
mod bench_embed;
mod knowledge;
mod model;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hearth",
    version,
    about = "Hearth: a private, local knowledge assistant"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Always pick the most likely token (the default).
    #[arg(long, conflicts_with_all = ["temperature", "top_p", "top_k", "seed"])]
    greedy: bool,
    #[arg(long)]
    temperature: Option<f32>,
    #[arg(long)]
    top_p: Option<f32>,
    #[arg(long)]
    top_k: Option<u32>,
    #[arg(long)]
    seed: Option<u64>,
    /// Penalise tokens seen in the last 64 positions (1 = off).
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
}

#[derive(Subcommand)]
enum Command {
    /// Generate text from a prompt.
    Generate {
        /// A .gguf file, a Hugging Face directory or a Hearth pack (default: SmolLM2-135M-Instruct).
        #[arg(long)]
        model: Option<PathBuf>,
        #[arg(long)]
        prompt: String,
        /// Wrap the prompt in the model's chat template.
        #[arg(long)]
        chat: bool,
        #[arg(long, default_value_t = 128)]
        max_tokens: usize,
        #[command(flatten)]
        sampling: SamplingArgs,
        #[arg(long)]
        json: bool,
        /// Print time to first token and tokens per second to stderr.
        #[arg(long)]
        timings: bool,
    },
    /// Teacher-forced next-token logits for every prefix of a token sequence.
    Logits {
        #[arg(long)]
        model: Option<PathBuf>,
        /// A JSON file `{"tokens":[ids]}`.
        #[arg(long)]
        tokens_json: PathBuf,
        #[arg(long, default_value_t = 10)]
        top: usize,
    },
    /// Convert a model into a Hearth pack (INT4 weights, tokenizer, config, manifest with sha256).
    Convert {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// What a Hugging Face checkpoint's matrices are quantised to: q4s (symmetric INT4 with an
        /// f16 scale per 32 weights, as GGUF Q4_0; the default), q4 (also an f16 min per group), q8
        /// or f32. GGUF files and packs convert as stored.
        #[arg(long, value_parser = parse_quant)]
        quant: Option<hearth_gpu::WeightFormat>,
    },
    /// Measure prefill and decode speed with random weights of Llama-3.2-1B's shapes.
    Bench {
        #[arg(long)]
        json: bool,
        /// Decode tokens per measurement.
        #[arg(long, default_value_t = 128)]
        decode_tokens: usize,
        /// Prompt lengths to time prefill at.
        #[arg(long, value_delimiter = ',', default_value = "512,2048")]
        prefill: Vec<usize>,
        /// Context depths to time decoding at.
        #[arg(long, value_delimiter = ',', default_value = "0,2048")]
        depths: Vec<usize>,
        /// Instead: time the sentence encoder over the texts of this JSON file `{"texts": [...]}`.
        #[arg(long)]
        embed_texts: Option<PathBuf>,
        /// Encoder directory for --embed-texts (default: all-MiniLM-L6-v2).
        #[arg(long)]
        encoder: Option<PathBuf>,
        /// Timed runs for --embed-texts (the best is reported).
        #[arg(long, default_value_t = 3)]
        runs: usize,
        /// Time this model (GGUF, Hugging Face folder or Hearth pack) instead of random weights.
        #[arg(long)]
        model: Option<PathBuf>,
        /// Also show each kernel's GPU time per pass (timestamp queries).
        #[arg(long)]
        profile: bool,
        /// The device's memory bandwidth in GB/s, to show each mat-vec's fraction of it.
        #[arg(long)]
        peak_gb_s: Option<f64>,
        /// Tokens per prefill pass (default: the longest --prefill, at most 2048).
        #[arg(long)]
        prefill_chunk: Option<usize>,
    },
    /// Add files and folders (.html .htm .md .markdown .txt .pdf .docx) to a knowledge index.
    Ingest(knowledge::IngestArgs),
    /// Search a knowledge index (hybrid, dense or keyword).
    Search(knowledge::SearchArgs),
    /// List or remove the documents of a knowledge index.
    Docs(knowledge::DocsArgs),
    /// Embed texts with the sentence encoder.
    Embed(knowledge::EmbedArgs),
    /// Answer a question from the indexed documents, citing them as [1], [2] ….
    Ask(assistant::AskArgs),
    /// Summarize a document of any length (map-reduce when it does not fit the context).
    Summarize(assistant::SummarizeArgs),
    /// Chat about the indexed documents in the terminal (/sources, /clear, /quit).
    Chat(assistant::ChatArgs),
}

fn parse_quant(s: &str) -> Result<hearth_gpu::WeightFormat, String> {
    hearth_gpu::WeightFormat::from_sym(s)
        .ok_or_else(|| format!("`{s}`: expected q4s, q4, q8 or f32"))
}

/// When `main` started: cold-start timings are measured from it.
static START: OnceLock<Instant> = OnceLock::new();

/// Seconds since `main` started.
pub fn since_start() -> f64 {
    START.get_or_init(Instant::now).elapsed().as_secs_f64()
}

fn main() -> ExitCode {
    START.get_or_init(Instant::now);
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate {
            model,
            prompt,
            chat,
            max_tokens,
            sampling,
            json,
            timings,
        } => run::generate(
            model.as_deref(),
            &prompt,
            chat,
            max_tokens,
            &sampling,
            json,
            timings,
        ),
        Command::Logits {
            model,
            tokens_json,
            top,
        } => run::logits(model.as_deref(), &tokens_json, top),
        Command::Convert { model, out, quant } => run::convert(&model, &out, quant),
        Command::Bench {
            json,
            decode_tokens,
            prefill,
            depths,
            embed_texts,
            encoder,
            runs,
            model,
            profile,
            peak_gb_s,
            prefill_chunk,
        } => match embed_texts {
            Some(texts) => bench_embed::run(json, &texts, encoder.as_deref(), runs),
            None => bench::run(
                json,
                model.as_deref(),
                &hearth_models::llama::bench::BenchPlan {
                    prefills: prefill,
                    depths,
                    decode_tokens,
                    profile,
                    peak_gb_s,
                    prefill_chunk,
                },
            ),
        },
        Command::Ingest(args) => knowledge::ingest(&args),
        Command::Search(args) => knowledge::search(&args),
        Command::Docs(args) => knowledge::docs(&args),
        Command::Embed(args) => knowledge::embed(&args),
        Command::Ask(args) => assistant::ask_cmd(&args),
        Command::Summarize(args) => assistant::summarize_cmd(&args),
        Command::Chat(args) => assistant::chat_cmd(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
