//! `ingest`, `search`, `docs` and `embed`: the knowledge index from the command line. An index
//! is a directory holding one snapshot (`hearth_knowledge::store`); the embedding model is the
//! GPU MiniLM sentence encoder, seen by the index through the `Embedder` trait.

mod ingest;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Subcommand, ValueEnum};
use hearth_knowledge::store::SNAPSHOT_FILE;
use hearth_knowledge::{DocKind, DocumentMeta, KnowledgeIndex, Mode};
use hearth_models::bert::{self, SentenceEncoder};
use serde::Serialize;

use crate::model;
use crate::run::CliError;

pub use ingest::{ingest, IngestArgs};

/// The GPU sentence encoder, which is the index's `Embedder`.
pub type Encoder = SentenceEncoder;

/// The encoder at `path`, or the default one from the model cache, on a GPU of its own.
pub fn load_encoder(path: Option<&Path>) -> Result<Encoder, CliError> {
    load_encoder_on(&model::gpu()?, path)
}

/// The encoder at `path` (or the default) on `gpu`.
pub fn load_encoder_on(gpu: &hearth_gpu::Gpu, path: Option<&Path>) -> Result<Encoder, CliError> {
    let dir = match path {
        Some(p) => p.to_path_buf(),
        None => bert::default_encoder_dir().ok_or_else(|| {
            CliError::Msg(
                "the default embedding model all-minilm-l6-v2 is not in the model cache: run \
                 `make models` (or pass --model DIR)"
                    .into(),
            )
        })?,
    };
    let t0 = Instant::now();
    eprintln!("loading encoder {} …", dir.display());
    let encoder = SentenceEncoder::load(gpu, &dir)?;
    eprintln!(
        "encoder loaded in {:.2}s: {} dimensions, {} tokens max",
        t0.elapsed().as_secs_f64(),
        encoder.dim(),
        encoder.max_tokens()
    );
    Ok(encoder)
}

/// The index in `dir`, or `None` when there is no snapshot there yet.
pub fn open_index(dir: &Path) -> Result<Option<KnowledgeIndex>, CliError> {
    if !dir.join(SNAPSHOT_FILE).exists() {
        return Ok(None);
    }
    Ok(Some(KnowledgeIndex::load(dir)?))
}

pub fn existing_index(dir: &Path) -> Result<KnowledgeIndex, CliError> {
    open_index(dir)?.ok_or_else(|| {
        CliError::Msg(format!(
            "no index in {} (create one with `hearth ingest --index {} PATH...`)",
            dir.display(),
            dir.display()
        ))
    })
}

/// Queries must be embedded by a model of the index's dimension.
pub fn check_dim(index: &KnowledgeIndex, dir: &Path, encoder: &Encoder) -> Result<(), CliError> {
    if index.dim() == encoder.dim() {
        return Ok(());
    }
    Err(CliError::Msg(format!(
        "the index in {} holds {}-dimensional embeddings but this model makes {}-dimensional \
         ones: use the model the index was built with",
        dir.display(),
        index.dim(),
        encoder.dim()
    )))
}

/// Folds pending dense changes into the HNSW graph (if due), then saves atomically.
pub fn save(index: &mut KnowledgeIndex, dir: &Path) -> Result<(), CliError> {
    index.finish_background_rebuild()?;
    if index.needs_rebuild() {
        index.rebuild()?;
    }
    index.save(dir)?;
    Ok(())
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ModeArg {
    Hybrid,
    Dense,
    Keyword,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Hybrid => Mode::Hybrid,
            ModeArg::Dense => Mode::Dense,
            ModeArg::Keyword => Mode::Keyword,
        }
    }
}

#[derive(Args, Debug)]
pub struct SearchArgs {
    /// Index directory.
    #[arg(long)]
    index: PathBuf,
    /// Number of results.
    #[arg(short, long, default_value_t = 5)]
    k: usize,
    /// Print `{"hits":[...]}` on stdout.
    #[arg(long)]
    json: bool,
    #[arg(long, value_enum, default_value = "hybrid")]
    mode: ModeArg,
    /// Embedding model directory (default: all-minilm-l6-v2 from the model cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Run every line of FILE as a query, printing one `{"query":..,"hits":[..]}` line each.
    #[arg(long, conflicts_with = "query")]
    queries: Option<PathBuf>,
    /// The query (several words are joined with spaces).
    #[arg(required_unless_present = "queries")]
    query: Vec<String>,
}

/// One result as printed with `--json`.
#[derive(Serialize)]
pub struct HitJson<'a> {
    source: &'a str,
    title: &'a str,
    /// Heading path joined with " › ", or "".
    heading: String,
    page: Option<u32>,
    span: [usize; 2],
    score: f32,
    text: &'a str,
}

pub fn search(args: &SearchArgs) -> Result<(), CliError> {
    let index = existing_index(&args.index)?;
    let mode = Mode::from(args.mode);
    let queries: Vec<String> = match &args.queries {
        Some(file) => std::fs::read_to_string(file)
            .map_err(|source| CliError::Io {
                path: file.display().to_string(),
                source,
            })?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect(),
        None => vec![args.query.join(" ")],
    };
    // Keyword search needs no model at all.
    let embeddings = if mode == Mode::Keyword {
        vec![Vec::new(); queries.len()]
    } else {
        let encoder = load_encoder(args.model.as_deref())?;
        check_dim(&index, &args.index, &encoder)?;
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        pollster::block_on(encoder.embed(&refs))?
    };
    let mut out = std::io::stdout().lock();
    for (query, embedding) in queries.iter().zip(&embeddings) {
        let hits = index.search(embedding, query, args.k, mode)?;
        let hits: Vec<HitJson> = hits.iter().filter_map(|h| hit_json(&index, h)).collect();
        if args.queries.is_some() {
            print_json(&mut out, &QueryHits { query, hits })?;
        } else if args.json {
            print_json(&mut out, &Hits { hits })?;
        } else {
            print_hits(&mut out, &hits)?;
        }
    }
    Ok(())
}

/// A hit as the CLI prints it (`None` if its chunk is gone).
pub fn hit_json<'a>(index: &'a KnowledgeIndex, h: &hearth_knowledge::Hit) -> Option<HitJson<'a>> {
    let chunk = index.chunk(h.chunk_id)?;
    let doc = index.document(&h.doc_id)?;
    Some(HitJson {
        source: &doc.source_path,
        title: &doc.title,
        heading: chunk.heading_path.join(" › "),
        page: chunk.page,
        span: [chunk.span.0, chunk.span.1],
        score: h.score,
        text: &chunk.text,
    })
}

#[derive(Serialize)]
struct Hits<'a> {
    hits: Vec<HitJson<'a>>,
}

#[derive(Serialize)]
struct QueryHits<'a> {
    query: &'a str,
    hits: Vec<HitJson<'a>>,
}

/// One line of JSON, fields in declaration order.
pub fn print_json(out: &mut impl Write, value: &impl Serialize) -> Result<(), CliError> {
    let line = serde_json::to_string(value).map_err(|e| CliError::Msg(e.to_string()))?;
    writeln!(out, "{line}").map_err(stdout_error)
}

fn stdout_error(source: std::io::Error) -> CliError {
    CliError::Io {
        path: "stdout".into(),
        source,
    }
}

fn print_hits(out: &mut impl Write, hits: &[HitJson]) -> Result<(), CliError> {
    if hits.is_empty() {
        writeln!(out, "no results").map_err(stdout_error)?;
    }
    for (rank, h) in hits.iter().enumerate() {
        // The outermost heading often repeats the title.
        let heading = h.heading.strip_prefix(h.title).unwrap_or(&h.heading);
        let heading = heading.trim_start_matches(" › ");
        let mut place = h.title.to_string();
        if !heading.is_empty() {
            place = format!("{place} › {heading}");
        }
        if let Some(page) = h.page {
            place = format!("{place} (page {page})");
        }
        let text: String = h.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let snippet: String = text.chars().take(240).collect();
        let more = if snippet.len() < text.len() {
            "…"
        } else {
            ""
        };
        writeln!(
            out,
            "{}. [{:.4}] {place}\n   {}\n   {snippet}{more}\n",
            rank + 1,
            h.score,
            h.source
        )
        .map_err(stdout_error)?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct DocsArgs {
    /// Index directory.
    #[arg(long, global = true)]
    index: Option<PathBuf>,
    /// Print JSON on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    action: Option<DocsAction>,
}

#[derive(Subcommand, Debug)]
enum DocsAction {
    /// List the indexed documents (the default).
    List,
    /// Remove a document by its source path, as `list` shows it.
    Remove { path: String },
}

#[derive(Serialize)]
struct DocJson<'a> {
    path: &'a str,
    title: &'a str,
    kind: &'static str,
    size: u64,
    chunks: usize,
    added_unix_ms: u64,
    /// UTC, `YYYY-MM-DD HH:MM:SS`.
    added: String,
}

fn kind_name(kind: DocKind) -> &'static str {
    match kind {
        DocKind::Html => "html",
        DocKind::Markdown => "markdown",
        DocKind::Text => "text",
        DocKind::Pdf => "pdf",
        DocKind::Docx => "docx",
    }
}

fn doc_json(d: &DocumentMeta) -> DocJson<'_> {
    DocJson {
        path: &d.source_path,
        title: &d.title,
        kind: kind_name(d.kind),
        size: d.size,
        chunks: d.chunks.len(),
        added_unix_ms: d.added_unix_ms,
        added: utc_date(d.added_unix_ms),
    }
}

pub fn docs(args: &DocsArgs) -> Result<(), CliError> {
    let dir = args
        .index
        .as_deref()
        .ok_or_else(|| CliError::Msg("--index DIR is required".into()))?;
    let mut index = existing_index(dir)?;
    let mut out = std::io::stdout().lock();
    match &args.action {
        None | Some(DocsAction::List) => {
            let mut docs: Vec<&DocumentMeta> = index.documents().collect();
            docs.sort_by(|a, b| a.source_path.cmp(&b.source_path));
            let docs: Vec<DocJson> = docs.into_iter().map(doc_json).collect();
            if args.json {
                #[derive(Serialize)]
                struct Docs<'a> {
                    documents: Vec<DocJson<'a>>,
                }
                return print_json(&mut out, &Docs { documents: docs });
            }
            print_docs(&mut out, &docs)
        }
        Some(DocsAction::Remove { path }) => {
            let meta = find_document(&index, path)?.clone();
            index.remove_document(&meta.id)?;
            save(&mut index, dir)?;
            if args.json {
                #[derive(Serialize)]
                struct Removed<'a> {
                    removed: DocJson<'a>,
                }
                let removed = Removed {
                    removed: doc_json(&meta),
                };
                return print_json(&mut out, &removed);
            }
            writeln!(
                out,
                "removed {} ({} chunks)",
                meta.source_path,
                meta.chunks.len()
            )
            .map_err(stdout_error)
        }
    }
}

/// The document listed under `path`, or under its canonical form (a relative path given here).
fn find_document<'a>(index: &'a KnowledgeIndex, path: &str) -> Result<&'a DocumentMeta, CliError> {
    let canonical = std::fs::canonicalize(path)
        .ok()
        .map(|p| p.to_string_lossy().into_owned());
    index
        .document_by_path(path)
        .or_else(|| canonical.and_then(|c| index.document_by_path(&c)))
        .ok_or_else(|| {
            CliError::Msg(format!(
                "no document with source path {path:?} in the index (see `hearth docs list`)"
            ))
        })
}

fn print_docs(out: &mut impl Write, docs: &[DocJson]) -> Result<(), CliError> {
    if docs.is_empty() {
        return writeln!(out, "the index is empty").map_err(stdout_error);
    }
    writeln!(
        out,
        "{:<19}  {:<8}  {:>9}  {:>6}  {:<32}  PATH",
        "ADDED (UTC)", "KIND", "SIZE", "CHUNKS", "TITLE"
    )
    .map_err(stdout_error)?;
    for d in docs {
        let title: String = d.title.chars().take(32).collect();
        writeln!(
            out,
            "{:<19}  {:<8}  {:>9}  {:>6}  {:<32}  {}",
            d.added,
            d.kind,
            human_size(d.size),
            d.chunks,
            title,
            d.path
        )
        .map_err(stdout_error)?;
    }
    let chunks: usize = docs.iter().map(|d| d.chunks).sum();
    writeln!(out, "{} documents, {chunks} chunks", docs.len()).map_err(stdout_error)
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < 1024 => format!("{b} B"),
        b if b < 1 << 20 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64),
    }
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time in milliseconds (Hinnant's civil-from-days).
fn utc_date(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[derive(Args, Debug)]
pub struct EmbedArgs {
    /// Embedding model directory (default: all-minilm-l6-v2 from the model cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print `{"embeddings":[[...], ...]}` on stdout.
    #[arg(long)]
    json: bool,
    /// Texts to embed, one embedding each.
    #[arg(required = true)]
    texts: Vec<String>,
}

pub fn embed(args: &EmbedArgs) -> Result<(), CliError> {
    let encoder = load_encoder(args.model.as_deref())?;
    let refs: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    let embeddings = pollster::block_on(encoder.embed(&refs))?;
    let mut out = std::io::stdout().lock();
    if args.json {
        #[derive(Serialize)]
        struct Embeddings {
            embeddings: Vec<Vec<f32>>,
        }
        return print_json(&mut out, &Embeddings { embeddings });
    }
    for (text, e) in args.texts.iter().zip(&embeddings) {
        let head: Vec<String> = e.iter().take(6).map(|x| format!("{x:+.4}")).collect();
        let tokens = encoder.count_tokens(text);
        writeln!(
            out,
            "[{}, …] ({} dims, {tokens} tokens) {text}",
            head.join(", "),
            e.len()
        )
        .map_err(stdout_error)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc_date(0), "1970-01-01 00:00:00");
        // 2000-02-29 12:34:56 UTC (a leap day of a century leap year).
        assert_eq!(utc_date(951_827_696_000), "2000-02-29 12:34:56");
        assert_eq!(utc_date(1_735_689_599_999), "2024-12-31 23:59:59");
    }
}
