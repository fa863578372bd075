// Loads the Rust engine (`crates/hearth-wasm`, built by `make extension`) into the service worker.
//
// Static import of the wasm-bindgen glue: service workers may not use `import()`. The module is
// instantiated on first use, not at start-up, so that waking the worker for a context-menu click
// does not compile megabytes of wasm.

import init, * as hearth from '../pkg/hearth_wasm.js';
import { PACKAGED_MODELS, type BenchReport, type BenchRequest, type BrowserAdapterInfo, type GenerateRequest, type GenerateResult, type GpuInfo, type PackagedModel, type SelfTestReport } from './messages.js';

/** The file `make extension` copies next to `background.js`. */
export const WASM_FILE = 'hearth_wasm_bg.wasm';

let loading: Promise<void> | null = null;
/** Set once a call traps (a Rust panic): the instance's memory may be inconsistent from then on. */
let crashed: string | null = null;

export function load(): Promise<void> {
  loading ??= init({ module_or_path: chrome.runtime.getURL(WASM_FILE) }).then(
    () => undefined,
    (e: unknown) => {
      loading = null; // let the next call try again
      throw new Error(`loading ${WASM_FILE} failed: ${String(e)}`);
    },
  );
  return loading;
}

/** Runs `f` against the loaded module, turning a trap into a clear, sticky error. */
export async function call<T>(what: string, f: () => Promise<unknown> | unknown): Promise<T> {
  if (crashed !== null) {
    throw new Error(`the engine crashed earlier (${crashed}); reload the extension to recover`);
  }
  await load();
  try {
    return (await f()) as T;
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      crashed = `${what}: ${e.message}`;
      throw new Error(`the engine crashed in ${what}: ${e.message} (see the service worker console)`);
    }
    throw e instanceof Error ? e : new Error(String(e));
  }
}

/** The slice of WebGPU's `navigator.gpu` used here (TypeScript's DOM lib has no WebGPU types). */
interface NavigatorGpu {
  gpu?: {
    requestAdapter(): Promise<{
      info?: Partial<Omit<BrowserAdapterInfo, 'isFallbackAdapter'>> & { isFallbackAdapter?: boolean };
    } | null>;
  };
}

/** Why WebGPU cannot be used here, or null when an adapter is available. */
export async function webGpuProblem(): Promise<string | null> {
  const gpu = (navigator as NavigatorGpu).gpu;
  if (gpu === undefined) {
    return 'This browser offers no WebGPU. Use Chrome or Edge 124 or later with WebGPU enabled (on Linux: chrome://flags/#enable-unsafe-webgpu and Vulkan).';
  }
  const adapter = await gpu.requestAdapter().catch(() => null);
  if (adapter === null) {
    return 'WebGPU found no usable GPU adapter. Update the graphics driver, or enable chrome://flags/#enable-unsafe-webgpu (and #enable-vulkan on Linux).';
  }
  return null;
}

/** Vendor, architecture… straight from the browser, for display next to the engine's report. */
async function browserAdapter(): Promise<BrowserAdapterInfo | null> {
  const adapter = await (navigator as NavigatorGpu).gpu?.requestAdapter();
  const info = adapter?.info;
  if (info === undefined) return null;
  return {
    vendor: info.vendor ?? '',
    architecture: info.architecture ?? '',
    device: info.device ?? '',
    description: info.description ?? '',
    isFallbackAdapter: info.isFallbackAdapter ?? false,
  };
}

export async function gpuInfo(): Promise<GpuInfo> {
  const report = await call<Omit<GpuInfo, 'browser_adapter'>>('gpuInfo', () => hearth.gpuInfo());
  return { ...report, browser_adapter: await browserAdapter().catch(() => null) };
}

export function selfTest(): Promise<SelfTestReport> {
  return call('selfTest', () => hearth.selfTest());
}

export function bench(req: BenchRequest): Promise<BenchReport> {
  const { shape, prefill, depths, decode_tokens } = req;
  return call('benchLlama', () => hearth.benchLlama({ shape, prefill, depths, decode_tokens }));
}

/** Context the worker allocates the KV cache for, per model (SwiftShader memory is the system's). */
export const MAX_CONTEXT = 2048;

/** Raw-generation engines by packaged model name (the `model.generate` request). */
const engines = new Map<PackagedModel, Promise<hearth.Engine>>();

function engineFor(model: PackagedModel): Promise<hearth.Engine> {
  let e = engines.get(model);
  if (e === undefined) {
    e = call<hearth.Engine>(`loading ${model}`, async () => {
      const bytes = await packaged(PACKAGED_MODELS[model]);
      return hearth.Engine.loadGguf(bytes, MAX_CONTEXT);
    });
    engines.set(model, e);
    e.catch(() => engines.delete(model)); // let a later call retry
  }
  return e;
}

/** A file shipped in the extension package. */
export async function packaged(path: string): Promise<Uint8Array> {
  const res = await fetch(chrome.runtime.getURL(path));
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/** Whether the package holds `path` (test-only models are absent from the store build). */
export async function hasPackaged(path: string): Promise<boolean> {
  try {
    const res = await fetch(chrome.runtime.getURL(path), { method: 'HEAD' });
    return res.ok;
  } catch {
    return false;
  }
}

/** Generates with a packaged model, streaming text pieces to `onPiece` until `signal` aborts. */
export async function generate(req: GenerateRequest, onPiece: (piece: string) => void, signal: AbortSignal): Promise<GenerateResult> {
  const engine = await engineFor(req.model);
  const { type: _type, model: _model, ...request } = req;
  return call<GenerateResult>('generate', () =>
    engine.generate(request, (piece: string) => {
      onPiece(piece);
      return !signal.aborted;
    }),
  );
}

export { hearth };
