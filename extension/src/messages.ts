// The typed protocol between the extension's pages, its content script and its service worker.
//
// Pages talk to the service worker over a long-lived port (`RPC_PORT`): a page sends `RpcCall`s;
// the worker answers each with zero or more `progress` messages then one `result` or `error`,
// and may push `HearthEvent`s at any time. Adding a request (say `engine.generate`) means adding
// one member to `Request`, its answer to `Responses`, its progress type to `Progresses`, and one
// handler in `background.ts` (the compiler insists on the handler).

/** Name of the port pages open with `chrome.runtime.connect`. */
export const RPC_PORT = 'hearth-rpc';

// ---- Values the Rust side returns (mirror `crates/hearth-wasm/src/lib.rs`) ----

export interface GpuFeatures {
  f16: boolean;
  subgroups: boolean;
  subgroup_min_size: number;
  subgroup_max_size: number;
  timestamps: boolean;
}

/** `GPUAdapterInfo` as the browser reports it (wgpu leaves the adapter name empty on the web). */
export interface BrowserAdapterInfo {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  isFallbackAdapter: boolean;
}

/** `hearth_wasm::GpuReport`, plus what the browser itself says about the adapter. */
export interface GpuInfo {
  adapter: string;
  backend: string;
  device_type: string;
  driver: string;
  features: GpuFeatures;
  max_binding: number;
  max_buffer_size: number;
  max_workgroup_storage: number;
  max_invocations_per_workgroup: number;
  max_storage_buffers_per_stage: number;
  browser_adapter: BrowserAdapterInfo | null;
}

/** `hearth_wasm::SelfTestReport`. */
export interface SelfTestReport {
  kernel: string;
  n: number;
  max_abs_err: number;
  first_bad: number | null;
  passed: boolean;
}

/** Text taken from a tab by the content script. */
export interface PageCapture {
  url: string;
  title: string;
  /** The selection if there was one, else the page's visible text (truncated). */
  text: string;
  /** The main content as HTML (`@mozilla/readability` over the page without its hidden
   *  elements), which the parse worker turns into text with headings; empty for a selection. */
  html: string;
  fromSelection: boolean;
  truncated: boolean;
  capturedAt: number;
}

// ---- Documents: what the parse worker makes of a file or a page (mirror `hearth_wasm::parse`) ----

/** A document's identity and metadata (`hearth_wasm::DocInput`). */
export interface DocInput {
  /** Path, file name or URL: unique per index (a new version of the same source replaces the old). */
  source: string;
  title: string;
  id?: string;
  /** `html` | `markdown` | `text` | `pdf` | `docx`. */
  kind?: string;
  size: number;
  /** Hex SHA-256 of the source bytes. */
  content_hash: string;
  added_unix_ms: number;
}

/** One chunk (`hearth_wasm::ChunkInput`): `span` is a byte range in the extracted text. */
export interface ChunkInput {
  heading_path: string[];
  page?: number | null;
  span: [number, number];
  text: string;
}

/** `parseDocument`'s output, made in the side panel's throwaway parse worker. */
export interface ParsedDocument {
  doc: DocInput;
  chunks: ChunkInput[];
}

/** `hearth_wasm::DocListing`. */
export interface DocListing {
  id: string;
  source: string;
  title: string;
  kind: string;
  size: number;
  content_hash: string;
  added_unix_ms: number;
  chunks: number;
}

/** What adding a document did (`status`: `added` | `unchanged` | `replaced`). */
export interface UpsertReport {
  status: 'added' | 'unchanged' | 'replaced';
  id: string;
  old: string | null;
  chunks: number;
}

// ---- The assistant's answers (mirror `hearth_assistant::{Answer, Summary, Citation}`) ----

export type Scope = 'page' | 'library' | 'all';

/** A numbered source as the model saw it, with the passage so the panel can show it. */
export interface CitationView {
  n: number;
  /** URL (a web page) or the file name (a library document). */
  source: string;
  title: string;
  /** Heading path joined with " › " (may be empty). */
  heading: string;
  page: number | null;
  /** Byte range in the document's extracted text. */
  span: [number, number];
  /** `page`: the captured tab; `library`: a stored document. */
  origin: 'page' | 'library';
  /** The chunk's text (to highlight on the page, or to show with its page number). */
  quote: string;
}

export interface AnswerView {
  text: string;
  citations: CitationView[];
  sources: CitationView[];
  /** `false`: nothing relevant was found and the model was not asked. */
  grounded: boolean;
  stopped: boolean;
  /** The model named its source only when asked (small models rarely write `[n]`). */
  cited_on_request: boolean;
  prompt_tokens: number;
}

export interface SummaryView {
  text: string;
  citations: CitationView[];
  sections: CitationView[];
  calls: number;
  stopped: boolean;
}

// ---- Models and the engine's state ----

/** A model Hearth can use: packaged in the extension, or imported into OPFS by the user. */
export interface ModelEntry {
  id: string;
  name: string;
  role: 'generator' | 'encoder';
  origin: 'packaged' | 'imported';
  /** Bytes on disk (all files). */
  size: number;
  /** For imported models: every file's sha256 matched its manifest. */
  verified: boolean;
  /** Packaged only for tests (never in the store zip). */
  test_only: boolean;
}

export type LoadState =
  | { state: 'idle' }
  | { state: 'loading'; done: number; total: number }
  | { state: 'ready'; gpu_bytes: number }
  | { state: 'error'; message: string };

export interface EngineStatus {
  /** `unavailable`: no `navigator.gpu` or no adapter (`gpu_error` says what to enable). */
  gpu: 'unknown' | 'ok' | 'unavailable' | 'lost';
  gpu_error: string | null;
  encoder: LoadState & { model: string };
  generator: LoadState & { model: string };
  documents: number;
  chunks: number;
  /** The page indexed for "This page", if any. */
  page: { url: string; title: string; chunks: number } | null;
  /** Times the engine was rebuilt after the GPU device was lost. */
  rebuilds: number;
}

/** Where a long task is (sent as `progress`). */
export type TaskProgress =
  | { piece: string }
  | { step: string }
  | { loaded: number; total: number; what: string }
  | { embedded: number; total: number };

// ---- Requests pages may make, and what each answers ----

/**
 * Models shipped in the package: the embedded default; for tests only (in dist/, not in the store
 * package), a tiny random one and a tiny constructed one that always writes one fixed sentence.
 */
export const PACKAGED_MODELS = {
  default: 'models/SmolLM2-135M-Instruct.Q4_1.gguf',
  'test-tiny': 'models/test/tiny-llama.gguf',
  'test-words': 'models/test/tiny-words.gguf',
} as const;
export type PackagedModel = keyof typeof PACKAGED_MODELS;

/** A generation request: text (optionally wrapped in the chat template) or token ids. */
export interface GenerateRequest {
  type: 'model.generate';
  model: PackagedModel;
  prompt?: string;
  prompt_tokens?: number[];
  chat?: boolean;
  max_tokens?: number;
  temperature?: number;
  top_k?: number;
  top_p?: number;
  seed?: number;
}

export interface GenerateResult {
  prompt_tokens: number[];
  tokens: number[];
  text: string;
}

/** `hearth bench`'s timing on this browser's WebGPU, random INT4 weights of a named shape. */
export interface BenchRequest {
  type: 'model.bench';
  /** `tiny`: a smoke test that runs in seconds on SwiftShader; `llama-3.2-1b`: the real shapes. */
  shape: 'tiny' | 'llama-3.2-1b';
  prefill: number[];
  depths: number[];
  decode_tokens: number;
}

/** `hearth_wasm::BenchReport`. */
export interface BenchReport {
  shape: string;
  gpu: Omit<GpuInfo, 'browser_adapter'>;
  prefill: { tokens: number; seconds: number; tok_s: number }[];
  decode: { depth: number; tokens: number; tok_s: number }[];
  gpu_bytes: number;
  load_s: number;
}

export type Request =
  | { type: 'gpu.info' }
  | { type: 'gpu.selfTest' }
  | BenchRequest
  | { type: 'page.lastCapture' }
  | GenerateRequest
  | { type: 'status' }
  /** Reads the active tab (content script, activeTab) and returns its main content. */
  | { type: 'page.capture' }
  /** Indexes a parsed page for "This page" (replaces the previous page; not persisted). */
  | { type: 'page.index'; parsed: ParsedDocument }
  /** Scrolls the tab showing `url` to the passage and highlights it. */
  | { type: 'page.highlight'; url: string; quote: string }
  | { type: 'library.list' }
  | { type: 'library.add'; parsed: ParsedDocument }
  /** Adds the page indexed by `page.index` to the library. */
  | { type: 'library.addPage' }
  | { type: 'library.remove'; id: string }
  | { type: 'assistant.ask'; question: string; scope: Scope }
  /** Summarizes the indexed page, or a library document by id. */
  | { type: 'assistant.summarize'; target: { page: true } | { id: string } }
  /** One chat turn; `regenerate` answers the last question again (replacing its answer). */
  | { type: 'assistant.chat'; message: string; scope: Scope; regenerate?: boolean }
  | { type: 'assistant.chatReset' }
  | { type: 'models.list' }
  /** Loads `id` as the answering model (progress while loading). */
  | { type: 'models.select'; id: string }
  /** The panel finished copying and verifying a model into OPFS under `models/<id>/`. */
  | { type: 'models.imported'; id: string }
  | { type: 'models.remove'; id: string };

export type RequestType = Request['type'];

/** The request of a given type. */
export type RequestOf<T extends RequestType> = Extract<Request, { type: T }>;

export interface ModelsState {
  models: ModelEntry[];
  /** Id of the answering model. */
  active: string;
}

/** What each request resolves to. */
export interface Responses {
  'gpu.info': GpuInfo;
  'gpu.selfTest': SelfTestReport;
  'model.bench': BenchReport;
  'page.lastCapture': PageCapture | null;
  'model.generate': GenerateResult;
  status: EngineStatus;
  'page.capture': PageCapture;
  'page.index': { url: string; chunks: number };
  'page.highlight': { found: boolean };
  'library.list': DocListing[];
  'library.add': UpsertReport;
  'library.addPage': UpsertReport;
  'library.remove': { removed: boolean };
  'assistant.ask': AnswerView;
  'assistant.summarize': SummaryView;
  'assistant.chat': AnswerView;
  'assistant.chatReset': null;
  'models.list': ModelsState;
  'models.select': ModelsState;
  'models.imported': ModelsState;
  'models.remove': ModelsState;
}

/** What each request may report while it runs (`never`: nothing). */
export interface Progresses {
  'gpu.info': never;
  'gpu.selfTest': never;
  'model.bench': never;
  'page.lastCapture': never;
  /** Streamed text pieces. */
  'model.generate': { piece: string };
  status: never;
  'page.capture': never;
  'page.index': TaskProgress;
  'page.highlight': never;
  'library.list': never;
  'library.add': TaskProgress;
  'library.addPage': TaskProgress;
  'library.remove': never;
  'assistant.ask': TaskProgress;
  'assistant.summarize': TaskProgress;
  'assistant.chat': TaskProgress;
  'assistant.chatReset': never;
  'models.list': never;
  'models.select': TaskProgress;
  'models.imported': never;
  'models.remove': never;
}

// ---- Events the service worker pushes to every connected page ----

export type HearthEvent =
  /** The context menu sent a page or a selection ("Ask Hearth about the selection"). */
  | { type: 'page.captured'; capture: PageCapture }
  /** The engine's state changed (model loading, GPU lost and rebuilt, documents changed). */
  | { type: 'status'; status: EngineStatus };

// ---- Wire format on the port ----

export interface RpcCall {
  id: number;
  request: Request;
}

export interface RpcCancel {
  id: number;
  cancel: true;
}

/** Sent by a page every `HEARTBEAT_MS` while it waits for an answer: each message resets the
 *  service worker's idle timer, so the worker stays alive exactly as long as work runs. */
export interface RpcPing {
  ping: true;
}
export const HEARTBEAT_MS = 20_000;

export type ToWorker = RpcCall | RpcCancel | RpcPing;

export type FromWorker =
  | { id: number; kind: 'progress'; data: unknown }
  | { id: number; kind: 'result'; value: unknown }
  | { id: number; kind: 'error'; error: string }
  | { kind: 'event'; event: HearthEvent };

// ---- One-shot messages (`chrome.runtime.sendMessage`) from the content script ----

export type ContentMessage = { type: 'page.captured'; capture: PageCapture };

// ---- Runtime checks: messages cross a trust boundary, so shapes are checked, not assumed ----

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Bounds on what a page may ask the engine for (schema and size). */
const MAX_PROMPT_CHARS = 1 << 20;
const MAX_PROMPT_TOKENS = 1 << 17;
const MAX_NEW_TOKENS = 4096;
/** A question or chat message. */
const MAX_QUESTION_CHARS = 8192;
/** A parsed document: chunks and their total text (a 1,000-page book is ~3 M chars). */
const MAX_CHUNKS = 100_000;
const MAX_DOC_CHARS = 32 << 20;
const MAX_NAME_CHARS = 4096;
const MAX_QUOTE_CHARS = 64 << 10;
const SCOPES: readonly Scope[] = ['page', 'library', 'all'];
/** Model ids name OPFS folders: a safe, short alphabet only. */
const MODEL_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function optional(v: unknown, check: (x: unknown) => boolean): boolean {
  return v === undefined || check(v);
}

const isCount = (max: number) => (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x <= max;
const isUnit = (max: number) => (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= max;
const isText = (max: number) => (x: unknown) => typeof x === 'string' && x.length <= max;
const isQuestion = (x: unknown) => typeof x === 'string' && x.trim().length > 0 && x.length <= MAX_QUESTION_CHARS;
const isModelId = (x: unknown) => typeof x === 'string' && MODEL_ID.test(x);

function isGenerateRequest(v: Record<string, unknown>): boolean {
  const hasPrompt = typeof v.prompt === 'string' && v.prompt.length <= MAX_PROMPT_CHARS;
  const hasTokens =
    Array.isArray(v.prompt_tokens) &&
    v.prompt_tokens.length > 0 &&
    v.prompt_tokens.length <= MAX_PROMPT_TOKENS &&
    v.prompt_tokens.every(isCount(0xffff_ffff));
  return (
    typeof v.model === 'string' &&
    Object.hasOwn(PACKAGED_MODELS, v.model) &&
    (hasPrompt || hasTokens) &&
    optional(v.chat, (x) => typeof x === 'boolean') &&
    optional(v.max_tokens, isCount(MAX_NEW_TOKENS)) &&
    optional(v.temperature, isUnit(10)) &&
    optional(v.top_k, isCount(1 << 20)) &&
    optional(v.top_p, isUnit(1)) &&
    optional(v.seed, isCount(Number.MAX_SAFE_INTEGER))
  );
}

const MAX_BENCH_TOKENS = 4096;

function isBenchRequest(v: Record<string, unknown>): boolean {
  const lengths = (x: unknown) =>
    Array.isArray(x) && x.length <= 4 && x.every((n) => isCount(MAX_BENCH_TOKENS)(n) && (n as number) > 0);
  return (
    (v.shape === 'tiny' || v.shape === 'llama-3.2-1b') &&
    lengths(v.prefill) &&
    lengths(v.depths) &&
    isCount(MAX_BENCH_TOKENS)(v.decode_tokens) &&
    (v.decode_tokens as number) > 0
  );
}

function isDocInput(v: unknown): v is DocInput {
  return (
    isObject(v) &&
    isText(MAX_NAME_CHARS)(v.source) &&
    (v.source as string).length > 0 &&
    isText(MAX_NAME_CHARS)(v.title) &&
    optional(v.id, isText(MAX_NAME_CHARS)) &&
    optional(v.kind, (x) => typeof x === 'string' && ['html', 'markdown', 'text', 'pdf', 'docx'].includes(x)) &&
    isCount(Number.MAX_SAFE_INTEGER)(v.size) &&
    typeof v.content_hash === 'string' &&
    /^[0-9a-f]{64}$/.test(v.content_hash) &&
    isCount(Number.MAX_SAFE_INTEGER)(v.added_unix_ms)
  );
}

/** A parsed document, its chunks checked one by one and its total text bounded. */
export function isParsedDocument(v: unknown): v is ParsedDocument {
  if (!isObject(v) || !isDocInput(v.doc) || !Array.isArray(v.chunks) || v.chunks.length > MAX_CHUNKS) return false;
  let chars = 0;
  for (const c of v.chunks as unknown[]) {
    if (
      !isObject(c) ||
      typeof c.text !== 'string' ||
      !Array.isArray(c.heading_path) ||
      c.heading_path.length > 16 ||
      !c.heading_path.every(isText(MAX_NAME_CHARS)) ||
      !optional(c.page, (x) => x === null || isCount(0xffff_ffff)(x)) ||
      !Array.isArray(c.span) ||
      c.span.length !== 2 ||
      !c.span.every(isCount(Number.MAX_SAFE_INTEGER)) ||
      (c.span[0] as number) > (c.span[1] as number)
    ) {
      return false;
    }
    chars += c.text.length;
    if (chars > MAX_DOC_CHARS) return false;
  }
  return true;
}

/** Per request type: does the rest of the message have the right shape and size? */
const REQUEST_SHAPES: { [T in RequestType]: (v: Record<string, unknown>) => boolean } = {
  'gpu.info': () => true,
  'gpu.selfTest': () => true,
  'model.bench': isBenchRequest,
  'page.lastCapture': () => true,
  'model.generate': isGenerateRequest,
  status: () => true,
  'page.capture': () => true,
  'page.index': (v) => isParsedDocument(v.parsed),
  'page.highlight': (v) => isText(MAX_NAME_CHARS)(v.url) && isText(MAX_QUOTE_CHARS)(v.quote),
  'library.list': () => true,
  'library.add': (v) => isParsedDocument(v.parsed),
  'library.addPage': () => true,
  'library.remove': (v) => isText(MAX_NAME_CHARS)(v.id),
  'assistant.ask': (v) => isQuestion(v.question) && (SCOPES as readonly unknown[]).includes(v.scope),
  'assistant.summarize': (v) =>
    isObject(v.target) && (v.target.page === true || isText(MAX_NAME_CHARS)(v.target.id)),
  'assistant.chat': (v) =>
    isQuestion(v.message) &&
    (SCOPES as readonly unknown[]).includes(v.scope) &&
    optional(v.regenerate, (x) => typeof x === 'boolean'),
  'assistant.chatReset': () => true,
  'models.list': () => true,
  'models.select': (v) => isModelId(v.id),
  'models.imported': (v) => isModelId(v.id),
  'models.remove': (v) => isModelId(v.id),
};

export function isRequest(v: unknown): v is Request {
  if (!isObject(v) || typeof v.type !== 'string' || !Object.hasOwn(REQUEST_SHAPES, v.type)) return false;
  return REQUEST_SHAPES[v.type as RequestType](v);
}

export function isToWorker(v: unknown): v is ToWorker {
  if (isObject(v) && v.ping === true) return true;
  if (!isObject(v) || typeof v.id !== 'number' || !Number.isSafeInteger(v.id)) return false;
  return v.cancel === true || isRequest(v.request);
}

export function isPageCapture(v: unknown): v is PageCapture {
  return (
    isObject(v) &&
    typeof v.url === 'string' &&
    typeof v.title === 'string' &&
    typeof v.text === 'string' &&
    typeof v.html === 'string' &&
    typeof v.fromSelection === 'boolean' &&
    typeof v.truncated === 'boolean' &&
    typeof v.capturedAt === 'number'
  );
}

export function isContentMessage(v: unknown): v is ContentMessage {
  return isObject(v) && v.type === 'page.captured' && isPageCapture(v.capture);
}

export function isFromWorker(v: unknown): v is FromWorker {
  if (!isObject(v) || typeof v.kind !== 'string') return false;
  if (v.kind === 'event') return isObject(v.event) && typeof v.event.type === 'string';
  return typeof v.id === 'number' && ['progress', 'result', 'error'].includes(v.kind);
}
