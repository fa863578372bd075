//! The engine the service worker runs for the side panel: the sentence encoder, the answering
//! model, the library index and the current page's index, and the assistant over them.
//!
//! [`HearthCore`] is plain Rust (tested natively on lavapipe); `hearth_js.rs` wraps it for
//! JavaScript. Parsing is not here: documents arrive parsed and chunked (see `parse.rs`), so a
//! parser crash cannot take the models or the index down.
//!
//! The indexes live on the CPU. When the GPU device is lost, [`HearthCore::reset_gpu`] makes a new
//! device and drops the models (the caller loads them again); the indexes are untouched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use hearth_assistant::{
    Answer, AskOptions, Chat, ChatOptions, Citation, DocumentText, Retrieve, Retrieved, Retriever,
    Step, SummarizeOptions, Summary,
};
use hearth_gpu::{Gpu, GpuOptions};
use hearth_knowledge::ingest::{embed_chunks, Progress};
use hearth_knowledge::{DocId, IngestPlan, KnowledgeError, KnowledgeIndex};
use hearth_models::llama::LlamaOptions;
use hearth_models::{ChatModel, EncoderFiles, ModelFiles, SentenceEncoder};
use serde::{Deserialize, Serialize};

use crate::library::{ChunkInput, DocInput, DocListing, LibraryCore, UpsertReport};

/// Chunks per encoder call while indexing (progress is reported after each).
const EMBED_BATCH: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum HearthError {
    #[error(transparent)]
    Gpu(#[from] hearth_gpu::GpuError),
    #[error(transparent)]
    Model(#[from] hearth_models::ModelError),
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    #[error(transparent)]
    Assistant(#[from] hearth_assistant::AssistantError),
    #[error("{0}")]
    State(String),
}

pub type Result<T> = std::result::Result<T, HearthError>;

fn state(msg: &str) -> HearthError {
    HearthError::State(msg.to_string())
}

/// A parsed document as the panel sends it.
#[derive(Clone, Debug, Deserialize)]
pub struct ParsedInput {
    pub doc: DocInput,
    pub chunks: Vec<ChunkInput>,
}

/// Which index a question searches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Page,
    Library,
    All,
}

/// A citation with where it lives and its passage (what the panel shows or highlights).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CitationView {
    #[serde(flatten)]
    pub citation: Citation,
    /// `page` (the captured tab) or `library`.
    pub origin: &'static str,
    pub quote: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AnswerView {
    pub text: String,
    pub citations: Vec<CitationView>,
    pub sources: Vec<CitationView>,
    pub grounded: bool,
    pub stopped: bool,
    pub cited_on_request: bool,
    pub prompt_tokens: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct SummaryView {
    pub text: String,
    pub citations: Vec<CitationView>,
    pub sections: Vec<CitationView>,
    pub calls: usize,
    pub stopped: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AddReport {
    #[serde(flatten)]
    pub upsert: UpsertReport,
    pub chunks: usize,
}

/// The page "This page" answers about: its chunks, their embeddings and an index of its own.
struct Page {
    doc: DocInput,
    chunks: Vec<ChunkInput>,
    embeddings: Vec<f32>,
    index: LibraryCore,
}

/// Everything a progress callback may be told.
pub enum Event<'a> {
    Piece(&'a str),
    Step(String),
    Embedded(Progress),
}

pub struct HearthCore {
    gpu: Gpu,
    lost: Arc<AtomicBool>,
    encoder: Option<SentenceEncoder>,
    generator: Option<ChatModel>,
    library: Option<LibraryCore>,
    page: Option<Page>,
    chat: Chat,
}

fn watch_loss(gpu: &Gpu) -> Arc<AtomicBool> {
    let lost = Arc::new(AtomicBool::new(false));
    let flag = lost.clone();
    gpu.device()
        .set_device_lost_callback(move |_, _| flag.store(true, Ordering::SeqCst));
    lost
}

impl HearthCore {
    pub async fn new() -> Result<Self> {
        let gpu = Gpu::new(&GpuOptions::default()).await?;
        let lost = watch_loss(&gpu);
        Ok(Self {
            gpu,
            lost,
            encoder: None,
            generator: None,
            library: None,
            page: None,
            chat: Chat::new(ChatOptions::default()),
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Whether the device was lost (the models must be loaded again after [`Self::reset_gpu`]).
    pub fn device_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// A new device; the models are dropped, the indexes and the conversation kept.
    pub async fn reset_gpu(&mut self) -> Result<()> {
        self.encoder = None;
        self.generator = None;
        let gpu = Gpu::new(&GpuOptions::default()).await?;
        self.lost = watch_loss(&gpu);
        self.gpu = gpu;
        Ok(())
    }

    /// Destroys the device, as a driver reset would (tests of the recovery path).
    pub fn lose_device(&self) {
        self.gpu.device().destroy();
    }

    pub fn load_encoder(&mut self, files: &EncoderFiles<'_>) -> Result<(usize, usize)> {
        self.encoder = None;
        let encoder = SentenceEncoder::from_files(&self.gpu, files)?;
        if let Some(lib) = &self.library {
            if lib.index.dim() != encoder.dim() {
                return Err(HearthError::State(format!(
                    "the library was built with {}-dimensional embeddings, this encoder makes {}",
                    lib.index.dim(),
                    encoder.dim()
                )));
            }
        }
        let info = (encoder.dim(), encoder.max_tokens());
        self.encoder = Some(encoder);
        Ok(info)
    }

    pub async fn load_generator(&mut self, files: &ModelFiles, max_context: usize) -> Result<u64> {
        self.generator = None; // free the old model's GPU memory first
        let opts = LlamaOptions {
            max_context: max_context.max(256),
            ..LlamaOptions::default()
        };
        let gen = ChatModel::from_files(&self.gpu, files, opts).await?;
        let bytes = gen.model.gpu_bytes();
        self.generator = Some(gen);
        Ok(bytes)
    }

    fn encoder(&self) -> Result<&SentenceEncoder> {
        self.encoder
            .as_ref()
            .ok_or_else(|| state("the embedding model is not loaded"))
    }

    /// Opens the library from a snapshot, or empty (with the encoder's dimension).
    pub fn open_library(&mut self, snapshot: Option<&[u8]>) -> Result<()> {
        let lib = match snapshot {
            Some(bytes) => LibraryCore::from_bytes(bytes)?,
            None => LibraryCore::new(self.encoder()?.dim())?,
        };
        if let Some(e) = &self.encoder {
            if e.dim() != lib.index.dim() {
                return Err(HearthError::State(format!(
                    "the saved library has {}-dimensional embeddings, the encoder makes {}",
                    lib.index.dim(),
                    e.dim()
                )));
            }
        }
        self.library = Some(lib);
        Ok(())
    }

    fn library(&self) -> Result<&LibraryCore> {
        self.library
            .as_ref()
            .ok_or_else(|| state("the library is not open"))
    }

    fn library_mut(&mut self) -> Result<&mut LibraryCore> {
        self.library
            .as_mut()
            .ok_or_else(|| state("the library is not open"))
    }

    pub fn snapshot(&self) -> Result<Vec<u8>> {
        Ok(self.library()?.index.to_bytes()?)
    }

    pub fn documents(&self) -> Result<Vec<DocListing>> {
        Ok(self.library()?.documents())
    }

    pub fn counts(&self) -> (usize, usize) {
        self.library.as_ref().map_or((0, 0), |l| {
            (l.index.documents().count(), l.index.chunk_count())
        })
    }

    /// `(url, title, chunks)` of the indexed page.
    pub fn page_info(&self) -> Option<(String, String, usize)> {
        self.page
            .as_ref()
            .map(|p| (p.doc.source.clone(), p.doc.title.clone(), p.chunks.len()))
    }

    pub fn remove(&mut self, id: &str) -> Result<DocListing> {
        Ok(self.library_mut()?.remove(id)?)
    }

    async fn embed(
        &self,
        chunks: &[ChunkInput],
        on: &mut dyn FnMut(Event) -> bool,
    ) -> Result<Vec<f32>> {
        let texts: Vec<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
        let mut progress = |p: Progress| {
            on(Event::Embedded(p));
        };
        Ok(embed_chunks(self.encoder()?, &texts, EMBED_BATCH, &mut progress).await?)
    }

    /// Embeds and stores a parsed document; an unchanged one is not embedded again.
    pub async fn add_document(
        &mut self,
        parsed: ParsedInput,
        on: &mut dyn FnMut(Event) -> bool,
    ) -> Result<AddReport> {
        let lib = self.library()?;
        if let IngestPlan::Unchanged(id) =
            lib.index.plan(&parsed.doc.source, &parsed.doc.content_hash)
        {
            let chunks = lib.index.document(&id).map_or(0, |d| d.chunks.len());
            let upsert = UpsertReport {
                status: "unchanged",
                id: id.0,
                old: None,
            };
            return Ok(AddReport { upsert, chunks });
        }
        let embeddings = self.embed(&parsed.chunks, on).await?;
        self.store(parsed.doc, parsed.chunks, &embeddings)
    }

    fn store(&mut self, doc: DocInput, chunks: Vec<ChunkInput>, emb: &[f32]) -> Result<AddReport> {
        let n = chunks.len();
        let upsert = self.library_mut()?.upsert(doc, chunks, emb)?;
        Ok(AddReport { upsert, chunks: n })
    }

    /// Indexes the page "This page" answers about (replacing the previous one).
    pub async fn index_page(
        &mut self,
        parsed: ParsedInput,
        on: &mut dyn FnMut(Event) -> bool,
    ) -> Result<usize> {
        let same = self.page.as_ref().is_some_and(|p| {
            p.doc.source == parsed.doc.source && p.doc.content_hash == parsed.doc.content_hash
        });
        if same {
            return Ok(parsed.chunks.len());
        }
        self.page = None;
        let embeddings = self.embed(&parsed.chunks, on).await?;
        let mut index = LibraryCore::new(self.encoder()?.dim())?;
        index.upsert(parsed.doc.clone(), parsed.chunks.clone(), &embeddings)?;
        let n = parsed.chunks.len();
        self.page = Some(Page {
            doc: parsed.doc,
            chunks: parsed.chunks,
            embeddings,
            index,
        });
        Ok(n)
    }

    /// Stores the indexed page in the library (its embeddings are reused).
    pub fn add_page(&mut self) -> Result<AddReport> {
        let page = self
            .page
            .as_ref()
            .ok_or_else(|| state("no page has been read yet"))?;
        let (doc, chunks, emb) = (
            page.doc.clone(),
            page.chunks.clone(),
            page.embeddings.clone(),
        );
        self.store(doc, chunks, &emb)
    }

    /// The chunk text at `span` of `source` (first chunk overlapping it), and where it lives.
    fn quote(&self, source: &str, span: [usize; 2]) -> (&'static str, String) {
        let page = self.page.as_ref().map(|p| ("page", &p.index.index));
        let lib = self.library.as_ref().map(|l| ("library", &l.index));
        for (origin, index) in page.into_iter().chain(lib) {
            let Some(doc) = index.document_by_path(source) else {
                continue;
            };
            let chunks = doc.chunks.iter().filter_map(|id| index.chunk(*id));
            let mut overlapping =
                chunks.filter(|c| c.span.0 < span[1].max(span[0] + 1) && span[0] < c.span.1);
            if let Some(c) = overlapping.next() {
                return (origin, c.text.clone());
            }
            return (origin, String::new());
        }
        ("library", String::new())
    }

    fn view(&self, c: &Citation) -> CitationView {
        let (origin, quote) = self.quote(&c.source, c.span);
        CitationView {
            citation: c.clone(),
            origin,
            quote,
        }
    }

    fn answer_view(&self, a: &Answer) -> AnswerView {
        AnswerView {
            text: a.text.clone(),
            citations: a.citations.iter().map(|c| self.view(c)).collect(),
            sources: a.sources.iter().map(|c| self.view(c)).collect(),
            grounded: a.grounded,
            stopped: a.stopped,
            cited_on_request: a.cited_on_request,
            prompt_tokens: a.prompt_tokens,
        }
    }

    pub async fn ask(
        &mut self,
        question: &str,
        scope: Scope,
        on: &mut dyn FnMut(Event) -> bool,
    ) -> Result<AnswerView> {
        let retriever = scoped(&self.page, &self.library, &self.encoder, scope)?;
        let gen = generator(&mut self.generator)?;
        let mut piece = |p: &str| on(Event::Piece(p));
        let answer = hearth_assistant::ask(
            gen,
            &retriever,
            question,
            &AskOptions::default(),
            &mut piece,
        )
        .await?;
        drop(retriever);
        Ok(self.answer_view(&answer))
    }

    /// One chat turn; `regenerate` first drops the last turn (its question is asked again).
    pub async fn chat(
        &mut self,
        message: &str,
        scope: Scope,
        regenerate: bool,
        on: &mut dyn FnMut(Event) -> bool,
    ) -> Result<AnswerView> {
        if regenerate {
            self.chat.pop();
        }
        let retriever = scoped(&self.page, &self.library, &self.encoder, scope)?;
        let gen = generator(&mut self.generator)?;
        let mut piece = |p: &str| on(Event::Piece(p));
        let answer = self
            .chat
            .ask(gen, &retriever, message, &mut piece)
            .await?
            .answer
            .clone();
        drop(retriever);
        Ok(self.answer_view(&answer))
    }

    pub fn chat_reset(&mut self) {
        self.chat.clear();
    }

    /// Summarizes the indexed page (`None`) or a library document by id.
    pub async fn summarize(
        &mut self,
        id: Option<&str>,
        on: &mut dyn FnMut(Event) -> bool,
    ) -> Result<SummaryView> {
        let text = {
            let (index, doc) = match id {
                None => {
                    let p = self
                        .page
                        .as_ref()
                        .ok_or_else(|| state("no page has been read yet"))?;
                    let doc = p.index.index.document_by_path(&p.doc.source);
                    (&p.index.index, doc)
                }
                Some(id) => {
                    let lib = self.library()?;
                    (&lib.index, lib.index.document(&DocId(id.to_string())))
                }
            };
            let doc = doc.ok_or_else(|| state("no such document"))?;
            let chunks = doc.chunks.iter().filter_map(|c| index.chunk(*c));
            DocumentText::from_chunks(&doc.source_path, &doc.title, chunks)
        };
        let gen = generator(&mut self.generator)?;
        // One callback serves both closures below; they never run at the same time.
        let on = std::cell::RefCell::new(on);
        let mut on_step = |s: Step| (on.borrow_mut())(Event::Step(step_text(s)));
        let mut on_piece = |p: &str| (on.borrow_mut())(Event::Piece(p));
        let opts = SummarizeOptions::default();
        let s: Summary =
            hearth_assistant::summarize(gen, &text, &opts, &mut on_step, &mut on_piece).await?;
        Ok(SummaryView {
            text: s.text.clone(),
            citations: s.citations.iter().map(|c| self.view(c)).collect(),
            sections: s.sections.iter().map(|c| self.view(c)).collect(),
            calls: s.calls,
            stopped: s.stopped,
        })
    }
}

fn step_text(s: Step) -> String {
    match s {
        Step::Map { group, of } => format!("Reading part {group} of {of}"),
        Step::Reduce { round, group, of } => {
            format!("Combining summaries (round {round}, {group} of {of})")
        }
        Step::Final => "Writing the summary".to_string(),
    }
}

/// The retriever for `scope`, over the fields it needs (so the generator can be borrowed beside).
fn scoped<'a>(
    page: &'a Option<Page>,
    library: &'a Option<LibraryCore>,
    encoder: &'a Option<SentenceEncoder>,
    scope: Scope,
) -> Result<Scoped<'a>> {
    let encoder = encoder
        .as_ref()
        .ok_or_else(|| state("the embedding model is not loaded"))?;
    let page = page.as_ref().map(|p| &p.index.index);
    let lib = library.as_ref().map(|l| &l.index);
    let found: Vec<&KnowledgeIndex> = match scope {
        Scope::Page => page.into_iter().collect(),
        Scope::Library => lib.into_iter().collect(),
        Scope::All => page.into_iter().chain(lib).collect(),
    };
    if found.is_empty() {
        return Err(state(match scope {
            Scope::Page => "no page has been read yet",
            _ => "the library is not open",
        }));
    }
    Ok(Scoped(
        found
            .into_iter()
            .map(|i| Retriever::new(i, encoder))
            .collect(),
    ))
}

fn generator(g: &mut Option<ChatModel>) -> Result<&mut ChatModel> {
    g.as_mut()
        .ok_or_else(|| state("the answering model is not loaded"))
}

/// Retrieval over one index or several (the page and the library): the query is embedded once,
/// each index retrieves on its own, then the lists are interleaved rank by rank, so neither
/// crowds the other out.
struct Scoped<'a>(Vec<Retriever<'a, SentenceEncoder>>);

impl Retrieve for Scoped<'_> {
    async fn retrieve(&self, query: &str) -> hearth_assistant::Result<Vec<Retrieved>> {
        // Every retriever shares the encoder and the parameters (see `scoped`).
        let Some(first) = self.0.first() else {
            return Ok(Vec::new());
        };
        let embedding = first.embed_query(query).await?;
        let mut lists = Vec::with_capacity(self.0.len());
        for r in &self.0 {
            lists.push(r.retrieve_embedded(query, &embedding)?.into_iter());
        }
        let mut out = Vec::new();
        loop {
            let before = out.len();
            out.extend(lists.iter_mut().filter_map(Iterator::next));
            if out.len() == before {
                return Ok(out);
            }
        }
    }
}
