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
  fromSelection: boolean;
  truncated: boolean;
  capturedAt: number;
}

// ---- Requests pages may make, and what each answers ----

/** Models shipped in the package: the embedded default, and a tiny random one for tests. */
export const PACKAGED_MODELS = {
  default: 'models/SmolLM2-135M-Instruct.Q4_1.gguf',
  'test-tiny': 'models/test/tiny-llama.gguf',
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

export type Request =
  | { type: 'gpu.info' }
  | { type: 'gpu.selfTest' }
  | { type: 'page.lastCapture' }
  | GenerateRequest;

export type RequestType = Request['type'];

/** What each request resolves to. */
export interface Responses {
  'gpu.info': GpuInfo;
  'gpu.selfTest': SelfTestReport;
  'page.lastCapture': PageCapture | null;
  'model.generate': GenerateResult;
}

/** What each request may report while it runs (`never`: nothing). */
export interface Progresses {
  'gpu.info': never;
  'gpu.selfTest': never;
  'page.lastCapture': never;
  /** Streamed text pieces. */
  'model.generate': { piece: string };
}

/** The request of a given type. */
export type RequestOf<T extends RequestType> = Extract<Request, { type: T }>;

// ---- Events the service worker pushes to every connected page ----

export type HearthEvent = { type: 'page.captured'; capture: PageCapture };

// ---- Wire format on the port ----

export interface RpcCall {
  id: number;
  request: Request;
}

export interface RpcCancel {
  id: number;
  cancel: true;
}

export type ToWorker = RpcCall | RpcCancel;

export type FromWorker =
  | { id: number; kind: 'progress'; data: unknown }
  | { id: number; kind: 'result'; value: unknown }
  | { id: number; kind: 'error'; error: string }
  | { kind: 'event'; event: HearthEvent };

// ---- One-shot messages (`chrome.runtime.sendMessage`) from the content script ----

export type ContentMessage = { type: 'page.captured'; capture: PageCapture };

// ---- Runtime checks: messages cross a trust boundary, so shapes are checked, not assumed ----

const REQUEST_TYPES: readonly RequestType[] = ['gpu.info', 'gpu.selfTest', 'page.lastCapture', 'model.generate'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

/** Bounds on what a page may ask the engine for (schema and size). */
const MAX_PROMPT_CHARS = 1 << 20;
const MAX_PROMPT_TOKENS = 1 << 17;
const MAX_NEW_TOKENS = 4096;

function optional(v: unknown, check: (x: unknown) => boolean): boolean {
  return v === undefined || check(v);
}

const isCount = (max: number) => (x: unknown) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0 && x <= max;
const isUnit = (max: number) => (x: unknown) => typeof x === 'number' && Number.isFinite(x) && x >= 0 && x <= max;

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

export function isRequest(v: unknown): v is Request {
  if (!isObject(v) || typeof v.type !== 'string' || !(REQUEST_TYPES as readonly string[]).includes(v.type)) return false;
  return v.type !== 'model.generate' || isGenerateRequest(v);
}

export function isToWorker(v: unknown): v is ToWorker {
  if (!isObject(v) || typeof v.id !== 'number' || !Number.isSafeInteger(v.id)) return false;
  return v.cancel === true || isRequest(v.request);
}

export function isPageCapture(v: unknown): v is PageCapture {
  return (
    isObject(v) &&
    typeof v.url === 'string' &&
    typeof v.title === 'string' &&
    typeof v.text === 'string' &&
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
