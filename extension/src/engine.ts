// The service worker's engine: one wasm `Hearth` (encoder, answering model, library and page
// indexes), its state for the panel, one task at a time, the library persisted in OPFS, and
// recovery when the GPU device is lost or the worker was stopped.
//
// Everything the panel asks for goes through `task()`: tasks run in order (the engine is single-
// threaded and a model cannot serve two prompts at once), and each first makes sure the engine is
// up — after a worker restart that means loading the models again and the library from OPFS.

import type { EngineStatus, LoadState, ModelEntry, ModelsState, TaskProgress } from './messages.js';
import { PACKAGED_MODELS } from './messages.js';
import { MODELS_DIR, opfsDir } from './opfs.js';
import { MAX_CONTEXT, call, hasPackaged, hearth, packaged, webGpuProblem } from './wasm.js';

/** The packaged encoder: all-MiniLM-L6-v2 as sentence-transformers lays it out. */
const ENCODER_DIR = 'models/all-minilm-l6-v2';
const ENCODER_NAME = 'all-MiniLM-L6-v2';
const ENCODER_FILES = {
  config: 'config.json',
  weights: 'model.safetensors',
  tokenizer: 'tokenizer.json',
  pooling: '1_Pooling/config.json',
  sentence: 'sentence_bert_config.json',
  modules: 'modules.json',
} as const;
const OPTIONAL_ENCODER_FILES = new Set(['pooling', 'sentence', 'modules']);

/** The library snapshot in OPFS (`createWritable` swaps the file in atomically on `close()`). */
const LIBRARY_DIR = 'library';
const SNAPSHOT = 'index.hsnap';
/** Imported models: `models/<id>/…` in OPFS, as the panel copied them. */
const ACTIVE_MODEL_KEY = 'activeModel';

const PACKAGED_NAMES: Record<string, string> = {
  default: 'SmolLM2-135M-Instruct (Q4_1, built in)',
  'test-tiny': 'tiny random Llama (tests only)',
  'test-words': 'tiny fixed-sentence Llama (tests only)',
};

type Listener = (s: EngineStatus) => void;

let engine: hearth.Hearth | null = null;
let starting: Promise<hearth.Hearth> | null = null;
let queue: Promise<unknown> = Promise.resolve();
const listeners = new Set<Listener>();

const status: EngineStatus = {
  gpu: 'unknown',
  gpu_error: null,
  encoder: { state: 'idle', model: ENCODER_NAME },
  generator: { state: 'idle', model: 'default' },
  documents: 0,
  chunks: 0,
  page: null,
  rebuilds: 0,
};

export function onStatus(f: Listener): void {
  listeners.add(f);
}

function changed(): void {
  for (const f of listeners) f(structuredClone(status));
}

function setLoad(which: 'encoder' | 'generator', s: LoadState): void {
  status[which] = { ...s, model: status[which].model };
  changed();
}

export function currentStatus(): EngineStatus {
  return structuredClone(status);
}

/** Runs `f` after every task before it, with the engine up. */
export function task<T>(f: (h: hearth.Hearth) => Promise<T>): Promise<T> {
  const run = queue.then(async () => {
    const h = await ensure();
    try {
      return await f(h);
    } catch (e) {
      // A lost device surfaces as a failed call: rebuild, then say so (the caller may retry).
      if (h.deviceLost()) {
        await rebuild(h);
        throw new Error('the GPU device was lost during this task; Hearth rebuilt its engine — please try again');
      }
      throw e;
    }
  });
  queue = run.catch(() => undefined);
  return run;
}

/** Starts the engine if it is not up (the panel calls `status` on open). */
export function warmUp(): void {
  // Said before the first await, so the status this call returns already says "loading".
  if (engine === null && starting === null) markStarting();
  task(async () => undefined).catch((e: unknown) => console.warn('hearth: engine start failed', e));
}

/** The engine is starting: both models count as loading until each says otherwise. */
function markStarting(): void {
  if (status.encoder.state !== 'loading') status.encoder = { state: 'loading', done: 0, total: 1, model: ENCODER_NAME };
  if (status.generator.state !== 'loading') status.generator = { state: 'loading', done: 0, total: 1, model: status.generator.model };
  changed();
}

async function ensure(): Promise<hearth.Hearth> {
  if (engine !== null) {
    if (engine.deviceLost()) await rebuild(engine);
    return engine;
  }
  if (starting === null) {
    markStarting();
    starting = start()
      .catch((e: unknown) => {
        // Nothing is loading any more: say why on both, so the panel does not wait forever.
        const message = errorText(e);
        for (const which of ['encoder', 'generator'] as const) {
          if (status[which].state === 'loading') setLoad(which, { state: 'error', message });
        }
        throw e;
      })
      .finally(() => {
        starting = null;
      });
  }
  return starting;
}

async function start(): Promise<hearth.Hearth> {
  const problem = await webGpuProblem();
  if (problem !== null) {
    status.gpu = 'unavailable';
    status.gpu_error = problem;
    changed();
    throw new Error(problem);
  }
  const h = await call<hearth.Hearth>('create', () => hearth.Hearth.create()).catch((e: unknown) => {
    status.gpu = 'unavailable';
    status.gpu_error = `WebGPU could not start: ${String(e)}`;
    changed();
    throw e;
  });
  status.gpu = 'ok';
  status.gpu_error = null;
  status.generator = { ...status.generator, model: await activeModel() };
  changed();
  await loadEncoder(h);
  await openLibrary(h);
  await loadGenerator(h, await activeModel());
  engine = h;
  return h;
}

/** After a device loss: a new device, the models again; the indexes stay in memory. */
async function rebuild(h: hearth.Hearth): Promise<void> {
  status.gpu = 'lost';
  changed();
  await call('resetGpu', () => h.resetGpu());
  status.gpu = 'ok';
  status.rebuilds += 1;
  status.generator = { state: 'loading', done: 0, total: 1, model: await activeModel() };
  await loadEncoder(h);
  await loadGenerator(h, await activeModel());
}

async function loadEncoder(h: hearth.Hearth): Promise<void> {
  const entries = Object.entries(ENCODER_FILES);
  setLoad('encoder', { state: 'loading', done: 0, total: entries.length });
  try {
    const files: Record<string, Uint8Array> = {};
    let done = 0;
    for (const [key, name] of entries) {
      // One request per file (a missing package file fails the fetch): optional ones may be absent.
      const res = await fetch(chrome.runtime.getURL(`${ENCODER_DIR}/${name}`)).catch(() => null);
      if (res === null || !res.ok) {
        if (OPTIONAL_ENCODER_FILES.has(key)) continue;
        throw new Error(`${ENCODER_DIR}/${name} is missing from the extension package`);
      }
      files[key] = new Uint8Array(await res.arrayBuffer());
      setLoad('encoder', { state: 'loading', done: ++done, total: entries.length });
    }
    await call('loadEncoder', () => h.loadEncoder(files));
    setLoad('encoder', { state: 'ready', gpu_bytes: files.weights?.byteLength ?? 0 });
  } catch (e) {
    setLoad('encoder', { state: 'error', message: errorText(e) });
    throw e;
  }
}

// ---- The library in OPFS ----

async function openLibrary(h: hearth.Hearth): Promise<void> {
  let bytes: Uint8Array | undefined;
  try {
    const file = await (await (await opfsDir(LIBRARY_DIR, true)).getFileHandle(SNAPSHOT)).getFile();
    bytes = new Uint8Array(await file.arrayBuffer());
  } catch {
    bytes = undefined; // no library yet
  }
  try {
    await call('openLibrary', () => h.openLibrary(bytes));
  } catch (e) {
    // A snapshot that does not load is kept aside, never overwritten, and the library starts empty.
    console.error('hearth: the saved library could not be read; keeping it as index.hsnap.unreadable', e);
    if (bytes !== undefined) await writeFile(LIBRARY_DIR, `${SNAPSHOT}.unreadable`, bytes).catch(() => undefined);
    await call('openLibrary', () => h.openLibrary(undefined));
  }
  refreshCounts(h);
}

async function writeFile(dirPath: string, name: string, bytes: Uint8Array): Promise<void> {
  const handle = await (await opfsDir(dirPath, true)).getFileHandle(name, { create: true });
  const w = await handle.createWritable();
  try {
    await w.write(bytes as Uint8Array<ArrayBuffer>);
    await w.close(); // the new content replaces the old only here, all at once
  } catch (e) {
    await w.abort().catch(() => undefined);
    throw e;
  }
}

/** Saves the library after a change (inside the task that changed it). */
export async function saveLibrary(h: hearth.Hearth): Promise<void> {
  const bytes = await call<Uint8Array>('snapshot', () => h.snapshot());
  await writeFile(LIBRARY_DIR, SNAPSHOT, bytes);
  refreshCounts(h);
}

export function refreshCounts(h: hearth.Hearth): void {
  const c = h.counts() as { documents: number; chunks: number; page: EngineStatus['page'] };
  status.documents = c.documents;
  status.chunks = c.chunks;
  status.page = c.page;
  changed();
}

// ---- Answering models: packaged GGUF files, or Hearth packs imported into OPFS ----

async function activeModel(): Promise<string> {
  const got = await chrome.storage.local.get(ACTIVE_MODEL_KEY);
  const id = got[ACTIVE_MODEL_KEY];
  return typeof id === 'string' ? id : 'default';
}

async function importedIds(): Promise<string[]> {
  const ids: string[] = [];
  try {
    const dir = await opfsDir(MODELS_DIR, true);
    for await (const [name, handle] of (dir as unknown as { entries(): AsyncIterable<[string, FileSystemHandle]> }).entries()) {
      if (handle.kind === 'directory') ids.push(name);
    }
  } catch {
    // no models folder yet
  }
  return ids.sort();
}

interface PackManifest {
  format?: string;
  architecture?: string;
  files?: { name?: string; path?: string; size?: number }[];
}

/** A pack's `manifest.json`: its bytes (the Rust loader checks them again) and what they say. */
async function readPackManifest(id: string): Promise<{ bytes: Uint8Array; manifest: PackManifest }> {
  const file = await (await (await opfsDir(`${MODELS_DIR}/${id}`, false)).getFileHandle('manifest.json')).getFile();
  const bytes = new Uint8Array(await file.arrayBuffer());
  return { bytes, manifest: JSON.parse(new TextDecoder().decode(bytes)) as PackManifest };
}

/** Sizes of the packaged models (`build.mjs` writes them). */
async function packagedSizes(): Promise<Record<string, number>> {
  try {
    return JSON.parse(new TextDecoder().decode(await packaged('models/sizes.json'))) as Record<string, number>;
  } catch {
    return {};
  }
}

export async function listModels(): Promise<ModelsState> {
  const models: ModelEntry[] = [];
  const sizes = await packagedSizes();
  for (const [id, path] of Object.entries(PACKAGED_MODELS)) {
    const test_only = id.startsWith('test-');
    if (test_only && !(await hasPackaged(path))) continue;
    const size = sizes[path] ?? 0;
    models.push({ id, name: PACKAGED_NAMES[id] ?? id, role: 'generator', origin: 'packaged', size, verified: true, test_only });
  }
  for (const id of await importedIds()) {
    try {
      const { manifest: m } = await readPackManifest(id);
      const size = (m.files ?? []).reduce((s, f) => s + (f.size ?? 0), 0);
      models.push({ id, name: `${id} (${m.architecture ?? 'Hearth pack'})`, role: 'generator', origin: 'imported', size, verified: true, test_only: false });
    } catch {
      // an import that never finished (no manifest): not listed
    }
  }
  return { models, active: await activeModel() };
}

async function loadGenerator(h: hearth.Hearth, id: string, progress?: (p: TaskProgress) => void): Promise<void> {
  status.generator = { state: 'loading', done: 0, total: 1, model: id };
  changed();
  try {
    const report = (loaded: number, total: number, what: string) => {
      status.generator = { state: 'loading', done: loaded, total, model: id };
      progress?.({ loaded, total, what });
    };
    let gpuBytes: number;
    if (Object.hasOwn(PACKAGED_MODELS, id)) {
      report(0, 1, `reading ${id}`);
      const bytes = await packaged(PACKAGED_MODELS[id as keyof typeof PACKAGED_MODELS]);
      report(1, 2, 'uploading to the GPU');
      gpuBytes = await call<number>('loadGguf', () => h.loadGguf(bytes, MAX_CONTEXT));
    } else {
      const dir = await opfsDir(`${MODELS_DIR}/${id}`, false);
      const { bytes, manifest } = await readPackManifest(id);
      const names = (manifest.files ?? []).map((f) => f.name ?? f.path ?? '');
      const files: Record<string, Uint8Array> = { 'manifest.json': bytes };
      for (const [i, name] of names.entries()) {
        report(i, names.length + 1, `reading ${name}`);
        let d = dir;
        const parts = name.split('/');
        for (const p of parts.slice(0, -1)) d = await d.getDirectoryHandle(p);
        const file = await (await d.getFileHandle(parts[parts.length - 1] ?? name)).getFile();
        files[name] = new Uint8Array(await file.arrayBuffer());
      }
      report(names.length, names.length + 1, 'checking and uploading to the GPU');
      gpuBytes = await call<number>('loadPack', () => h.loadPack(files, MAX_CONTEXT));
    }
    status.generator = { state: 'ready', gpu_bytes: gpuBytes, model: id };
    changed();
  } catch (e) {
    status.generator = { state: 'error', message: errorText(e), model: id };
    changed();
    throw e;
  }
}

/** Makes `id` the answering model (loaded now; remembered across restarts). */
export async function selectModel(id: string, progress: (p: TaskProgress) => void): Promise<ModelsState> {
  const known = (await listModels()).models.some((m) => m.id === id);
  if (!known) throw new Error(`no model ${id}`);
  await task(async (h) => {
    await loadGenerator(h, id, progress);
    await chrome.storage.local.set({ [ACTIVE_MODEL_KEY]: id });
  });
  return listModels();
}

export async function removeModel(id: string): Promise<ModelsState> {
  if (Object.hasOwn(PACKAGED_MODELS, id)) throw new Error('built-in models cannot be removed');
  const root = await opfsDir(MODELS_DIR, true);
  await root.removeEntry(id, { recursive: true });
  if ((await activeModel()) === id) {
    await chrome.storage.local.set({ [ACTIVE_MODEL_KEY]: 'default' });
    if (engine !== null) await task((h) => loadGenerator(h, 'default'));
  }
  return listModels();
}

/** Test hook: destroys the GPU device the way a driver reset would. */
export function loseDevice(): boolean {
  if (engine === null) return false;
  engine.loseDevice();
  return true;
}

export function errorText(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return /out of memory|OutOfMemory|allocation failed/i.test(msg) && !/out of memory/.test(msg)
    ? `the GPU is out of memory (${msg})`
    : msg;
}
