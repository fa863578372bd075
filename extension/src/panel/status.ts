// The panel-wide state banner (`status-banner`, `data-state` loading|ready|no-webgpu|gpu-lost|oom|
// empty|error) and the "Answers by" line, both driven by the engine's `EngineStatus`.

import type { EngineStatus, LoadState } from '../messages.js';
import { byTestId, errorMessage, setProgress } from './dom.js';

export type BannerState = 'loading' | 'ready' | 'no-webgpu' | 'gpu-lost' | 'oom' | 'empty' | 'error';

const NO_WEBGPU =
  'WebGPU is not available, so Hearth cannot run its models. Use Chrome or Edge 124 or newer with WebGPU enabled; ' +
  'on Linux turn on chrome://flags/#enable-unsafe-webgpu and make sure Vulkan drivers are installed.';
const EMPTY =
  'Nothing indexed yet. Add files in the Library tab (PDF, Word, Markdown, text or HTML) or open a web page ' +
  'and use “Add this page to the library”. “This page” works without a library.';

const isOom = (msg: string): boolean => /out of (gpu )?memory/i.test(msg);

/** A model name for people: the file or folder name without its extension. */
export function modelName(id: string): string {
  const last = id.split('/').pop() ?? id;
  return last.replace(/\.(gguf|safetensors)$/i, '') || id;
}

function loadingText(what: string, s: LoadState & { model: string }): string {
  if (s.state !== 'loading') return '';
  const pct = s.total > 0 ? ` ${Math.floor((100 * s.done) / s.total)}%` : '';
  return `Loading the ${what} (${modelName(s.model)})…${pct}`;
}

interface View {
  state: BannerState;
  text: string;
  progress: [number, number] | null;
}

/** What the banner says about `s` (the most pressing thing first). */
export function bannerFor(s: EngineStatus): View {
  if (s.gpu === 'unavailable') {
    return { state: 'no-webgpu', text: s.gpu_error ? `${NO_WEBGPU} (${s.gpu_error})` : NO_WEBGPU, progress: null };
  }
  if (s.gpu === 'lost') {
    return { state: 'gpu-lost', text: 'The GPU was lost (driver reset or sleep); rebuilding the engine…', progress: null };
  }
  for (const [what, m] of [['encoder', s.encoder], ['answering model', s.generator]] as const) {
    if (m.state === 'error') {
      return isOom(m.message)
        ? { state: 'oom', text: `Out of GPU memory while loading the ${what}: close other GPU-heavy tabs or choose a smaller model in Models. (${m.message})`, progress: null }
        : { state: 'error', text: `The ${what} failed to load: ${m.message}`, progress: null };
    }
  }
  for (const [what, m] of [['encoder', s.encoder], ['answering model', s.generator]] as const) {
    if (m.state === 'loading') return { state: 'loading', text: loadingText(what, m), progress: [m.done, m.total] };
  }
  if (s.documents === 0) return { state: 'empty', text: EMPTY, progress: null };
  const rebuilt = s.rebuilds > 0 ? ` The engine was rebuilt after a GPU loss (${s.rebuilds}×).` : '';
  const docs = `${s.documents} document${s.documents === 1 ? '' : 's'}, ${s.chunks} passages in your library.`;
  return { state: 'ready', text: `Ready. ${docs}${rebuilt}`, progress: null };
}

function show(v: View): void {
  const banner = byTestId('status-banner');
  banner.dataset.state = v.state;
  byTestId('status-text').textContent = v.text;
  const bar = byTestId<HTMLProgressElement>('status-progress');
  bar.hidden = v.progress === null;
  if (v.progress !== null) setProgress(bar, v.progress[0], v.progress[1]);
}

/** An error that does not come with a status (a failed call) holds until the next status. */
let sticky: View | null = null;
let last: EngineStatus | null = null;

export function showStatus(s: EngineStatus): void {
  last = s;
  const v = bannerFor(s);
  // A status that brings news (loading, errors, GPU trouble) replaces a sticky error;
  // an unchanged quiet state keeps it visible.
  if (sticky !== null && (v.state === 'ready' || v.state === 'empty')) {
    show(sticky);
  } else {
    sticky = null;
    show(v);
  }
  const gen = s.generator;
  const who = byTestId('active-model');
  const name = gen.model ? modelName(gen.model) : 'no model chosen';
  const state = gen.state === 'loading' ? ' (loading…)' : gen.state === 'idle' ? ' (loads on first use)' : gen.state === 'error' ? ' (failed)' : '';
  who.textContent = `Answers by: ${name}${state}`;
  who.dataset.model = gen.model;
}

/** Shows a failed call's error in the banner when it concerns the engine (OOM, worker gone). */
export function reportError(e: unknown): void {
  const msg = errorMessage(e);
  if (isOom(msg)) {
    sticky = { state: 'oom', text: `Out of GPU memory: close other GPU-heavy tabs or choose a smaller model in Models. (${msg})`, progress: null };
  } else if (msg.startsWith('the Hearth service worker stopped') || /webgpu|gpu device/i.test(msg)) {
    sticky = { state: 'error', text: msg, progress: null };
  } else {
    return;
  }
  show(sticky);
}

/** Clears a sticky error (after a call succeeds). */
export function clearError(): void {
  if (sticky === null) return;
  sticky = null;
  if (last !== null) showStatus(last);
}

/** Before the first status: the worker is starting. */
export function showStarting(): void {
  show({ state: 'loading', text: 'Starting Hearth…', progress: null });
}

/** The status call itself failed. */
export function showStatusError(e: unknown): void {
  show({ state: 'error', text: `Hearth could not start: ${errorMessage(e)}`, progress: null });
}
