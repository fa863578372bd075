// The side panel: GPU status, the engine self-test, and the last page sent from the context menu.

import { HearthClient } from './client.js';
import type { GpuInfo, PageCapture, SelfTestReport } from './messages.js';

const client = new HearthClient();

function el<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`sidepanel.html lacks #${id}`);
  return e as T;
}

/** Sets a status badge: `data-state` drives the colour (and the browser tests read it). */
function setState(e: HTMLElement, state: 'pending' | 'ok' | 'error', text: string): void {
  e.dataset.state = state;
  e.textContent = text;
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}

/** Fills a <dl> with rows (textContent only: no HTML from anywhere reaches innerHTML). */
function fillList(dl: HTMLElement, rows: [string, string][]): void {
  dl.replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      return [dt, dd];
    }),
  );
}

function adapterName(info: GpuInfo): string {
  const b = info.browser_adapter;
  const fromBrowser = b && [b.vendor, b.architecture, b.device, b.description].filter((x) => x !== '').join(' ');
  const name = info.adapter || fromBrowser || '(unnamed)';
  return b?.isFallbackAdapter ? `${name} (software fallback)` : name;
}

function showGpu(info: GpuInfo): void {
  const f = info.features;
  const features = [
    f.f16 ? 'shader-f16' : 'no f16 (f32 kernels)',
    f.subgroups ? `subgroups ${f.subgroup_min_size}–${f.subgroup_max_size}` : 'no subgroups',
    f.timestamps ? 'timestamps' : null,
  ].filter((x): x is string => x !== null);
  fillList(el('gpu-details'), [
    ['Adapter', adapterName(info)],
    ['Backend', `${info.backend}, ${info.device_type}`],
    ['Features', features.join(', ')],
    ['Largest binding', mib(info.max_binding)],
    ['Workgroup storage', `${info.max_workgroup_storage / 1024} KiB`],
  ]);
}

async function refreshGpu(): Promise<void> {
  const badge = el('gpu-state');
  setState(badge, 'pending', 'Looking for a GPU…');
  try {
    const info = await client.call({ type: 'gpu.info' });
    showGpu(info);
    setState(badge, 'ok', 'WebGPU ready');
  } catch (e) {
    setState(badge, 'error', e instanceof Error ? e.message : String(e));
  }
}

function showSelfTest(r: SelfTestReport): string {
  const verdict = r.passed ? 'passed' : `FAILED at index ${r.first_bad ?? '?'}`;
  return `${r.kernel} on ${r.n.toLocaleString()} values ${verdict} (max error ${r.max_abs_err.toExponential(1)})`;
}

async function runSelfTest(): Promise<void> {
  const badge = el('selftest-state');
  const button = el<HTMLButtonElement>('selftest-run');
  button.disabled = true;
  setState(badge, 'pending', 'Running on the GPU…');
  const t0 = performance.now();
  try {
    const r = await client.call({ type: 'gpu.selfTest' });
    const ms = (performance.now() - t0).toFixed(0);
    setState(badge, r.passed ? 'ok' : 'error', `${showSelfTest(r)} in ${ms} ms`);
  } catch (e) {
    setState(badge, 'error', e instanceof Error ? e.message : String(e));
  } finally {
    button.disabled = false;
  }
}

function showCapture(c: PageCapture | null): void {
  const box = el('capture');
  if (c === null) {
    box.textContent = 'Right-click a page or a selection and choose “Send to Hearth”.';
    return;
  }
  const what = c.fromSelection ? 'Selection from' : 'Page';
  const chars = `${c.text.length.toLocaleString()} characters${c.truncated ? ' (truncated)' : ''}`;
  box.textContent = `${what} “${c.title || c.url}” — ${chars}`;
}

client.onEvent((e) => {
  if (e.type === 'page.captured') showCapture(e.capture);
});
el('selftest-run').addEventListener('click', () => void runSelfTest());
void refreshGpu();
client.call({ type: 'page.lastCapture' }).then(showCapture, () => showCapture(null));
