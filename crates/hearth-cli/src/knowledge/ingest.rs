//! `hearth ingest`: files and folders into an index, each through `hearth_knowledge::ingest`.
//! One file's failure is reported and the rest continue; the snapshot is saved atomically at
//! the end and every [`SAVE_EVERY`] meanwhile, so an interrupted run keeps what it committed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Args;
use hearth_knowledge::ingest::{content_hash, IngestOptions, Ingested};
use hearth_knowledge::{IndexParams, IngestPlan, KnowledgeIndex, SourceHint};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use super::{check_dim, load_encoder, open_index, print_json, save, Encoder};
use crate::run::CliError;

/// File extensions ingest reads; everything else in a folder is skipped (and counted).
pub const SUPPORTED: [&str; 7] = ["html", "htm", "md", "markdown", "txt", "pdf", "docx"];
const SAVE_EVERY: Duration = Duration::from_secs(20);

#[derive(Args, Debug)]
pub struct IngestArgs {
    /// Index directory (created if missing).
    #[arg(long)]
    index: PathBuf,
    /// Embedding model directory (default: all-minilm-l6-v2 from the model cache).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    json: bool,
    /// Files or folders (read recursively).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Serialize)]
struct Failure {
    path: String,
    error: String,
}

#[derive(Serialize, Default)]
struct Summary {
    added: usize,
    unchanged: usize,
    replaced: usize,
    failed: Vec<Failure>,
    /// Files with an unsupported extension found in folders or given.
    skipped: usize,
    /// Chunks embedded by this run.
    chunks: usize,
    /// Time spent extracting, chunking and embedding (model loading excluded).
    ingest_seconds: f64,
    seconds: f64,
    /// The index afterwards.
    documents: usize,
    index_chunks: usize,
}

/// Files to ingest (sorted per folder, each once), and what was skipped or unreadable.
#[derive(Default)]
struct Inputs {
    files: Vec<PathBuf>,
    seen: HashSet<PathBuf>,
    skipped: usize,
    failed: Vec<Failure>,
}

impl Inputs {
    fn add(&mut self, path: &Path) {
        let supported = path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| SUPPORTED.contains(&e.to_ascii_lowercase().as_str()));
        if !supported {
            self.skipped += 1;
        } else if let Ok(canonical) = std::fs::canonicalize(path) {
            if self.seen.insert(canonical.clone()) {
                self.files.push(canonical);
            }
        } else {
            self.fail(path, "cannot resolve the path".into());
        }
    }

    fn fail(&mut self, path: &Path, error: String) {
        self.failed.push(Failure {
            path: path.display().to_string(),
            error,
        });
    }

    /// Folders recursively; symbolic links to folders are not followed (no cycles).
    fn walk(&mut self, dir: &Path) {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.fail(dir, e.to_string()),
        };
        let mut entries: Vec<_> = entries.filter_map(|e| e.ok()).collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => self.walk(&path),
                Ok(t) if t.is_file() => self.add(&path),
                Ok(t) if t.is_symlink() && path.is_file() => self.add(&path),
                Ok(_) => {}
                Err(e) => self.fail(&path, e.to_string()),
            }
        }
    }
}

fn collect(paths: &[PathBuf]) -> Inputs {
    let mut inputs = Inputs::default();
    for path in paths {
        match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => inputs.walk(path),
            Ok(_) => inputs.add(path),
            Err(e) => inputs.fail(path, e.to_string()),
        }
    }
    inputs
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

pub fn ingest(args: &IngestArgs) -> Result<(), CliError> {
    let t0 = Instant::now();
    let dir = &args.index;
    let inputs = collect(&args.paths);
    let attempted = inputs.files.len() + inputs.failed.len();
    let mut summary = Summary {
        skipped: inputs.skipped,
        failed: inputs.failed,
        ..Summary::default()
    };
    let mut index = open_index(dir)?;
    let mut encoder: Option<Encoder> = None;

    // Drawn only when stderr is a terminal.
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
    let files_bar = bars.add(ProgressBar::new(inputs.files.len() as u64));
    files_bar.set_style(style("files  [{bar:30}] {pos}/{len} {wide_msg}"));
    let chunks_bar = bars.add(ProgressBar::new(0));
    chunks_bar.set_style(style(
        "chunks [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
    ));
    let log = |line: String| bars.suspend(|| eprintln!("{line}"));

    let opts = IngestOptions::default();
    let mut last_save = Instant::now();
    let mut dirty = false;
    let mut busy = Duration::ZERO;
    for path in &inputs.files {
        let source = path.to_string_lossy().into_owned();
        files_bar.set_message(source.clone());
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                log(format!("failed    {source}: {e}"));
                summary.failed.push(Failure {
                    path: source,
                    error: e.to_string(),
                });
                files_bar.inc(1);
                continue;
            }
        };
        // An unchanged file needs neither the model nor extraction.
        if let Some(ix) = &index {
            if let IngestPlan::Unchanged(_) = ix.plan(&source, &content_hash(&bytes)) {
                log(format!("unchanged {source}"));
                summary.unchanged += 1;
                files_bar.inc(1);
                continue;
            }
        }
        let enc = match &mut encoder {
            Some(e) => e,
            None => encoder.insert(bars.suspend(|| load_encoder(args.model.as_deref()))?),
        };
        let ix = match &mut index {
            Some(ix) => ix,
            None => index.insert(KnowledgeIndex::new(enc.dim(), IndexParams::default())?),
        };
        check_dim(ix, dir, enc)?;

        chunks_bar.reset();
        let started = Instant::now();
        let result = pollster::block_on(hearth_knowledge::ingest::ingest(
            ix,
            enc,
            SourceHint::new(source.clone()),
            &bytes,
            now_ms(),
            &opts,
            &mut |p| {
                chunks_bar.set_length(p.chunks_total as u64);
                chunks_bar.set_position(p.chunks_done as u64);
            },
        ));
        busy += started.elapsed();
        match result {
            Ok(done) => {
                let n = done.chunks();
                summary.chunks += n;
                match done {
                    Ingested::Added { .. } => summary.added += 1,
                    Ingested::Replaced { .. } => summary.replaced += 1,
                    Ingested::Unchanged { .. } => summary.unchanged += 1,
                }
                let verb = match done {
                    Ingested::Added { .. } => "added    ",
                    Ingested::Replaced { .. } => "replaced ",
                    Ingested::Unchanged { .. } => "unchanged",
                };
                log(format!("{verb} {source} ({n} chunks)"));
                dirty |= !matches!(done, Ingested::Unchanged { .. });
            }
            Err(e) => {
                log(format!("failed    {source}: {e}"));
                summary.failed.push(Failure {
                    path: source,
                    error: e.to_string(),
                });
            }
        }
        files_bar.inc(1);
        ix.maintain()?;
        if dirty && last_save.elapsed() >= SAVE_EVERY {
            // A running background rebuild is not waited for: the snapshot holds its input.
            ix.save(dir)?;
            last_save = Instant::now();
            dirty = false;
        }
    }
    if let Some(ix) = &mut index {
        if dirty {
            save(ix, dir)?;
        }
        summary.documents = ix.documents().count();
        summary.index_chunks = ix.chunk_count();
    }
    files_bar.finish_and_clear();
    chunks_bar.finish_and_clear();
    summary.ingest_seconds = busy.as_secs_f64();
    summary.seconds = t0.elapsed().as_secs_f64();
    report(&summary, args.json)?;
    match summary.failed.len() {
        0 => Ok(()),
        n => Err(CliError::Msg(format!("{n} of {attempted} files failed"))),
    }
}

fn report(s: &Summary, json: bool) -> Result<(), CliError> {
    let out = |e| CliError::Io {
        path: "stdout".into(),
        source: e,
    };
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    if json {
        return print_json(&mut stdout, s);
    }
    let embedded = match s.chunks {
        0 => "no chunks embedded".to_string(),
        n => format!(
            "{n} chunks embedded in {:.1}s ({:.2} chunks/s)",
            s.ingest_seconds,
            n as f64 / s.ingest_seconds.max(1e-9)
        ),
    };
    writeln!(
        stdout,
        "{} added, {} unchanged, {} replaced, {} failed, {} skipped (unsupported); {embedded}; \
         index: {} documents, {} chunks",
        s.added,
        s.unchanged,
        s.replaced,
        s.failed.len(),
        s.skipped,
        s.documents,
        s.index_chunks
    )
    .map_err(out)?;
    for f in &s.failed {
        writeln!(stdout, "failed: {}: {}", f.path, f.error).map_err(out)?;
    }
    Ok(())
}
