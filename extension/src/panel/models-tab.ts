// The Models tab: the models Hearth can use, which one answers, switching, and importing a
// Hearth pack or a Hugging Face Llama folder (converted in the browser) into OPFS.

import type { EngineStatus, ModelEntry, ModelsState } from '../messages.js';
import { importModelFolder, type ImportProgress } from '../models-import.js';
import type { PanelContext } from './context.js';
import { byTestId, errorMessage, formatBytes, h, setProgress } from './dom.js';
import { clearError, modelName } from './status.js';

export function setupModelsTab(ctx: PanelContext): { refresh(): Promise<void> } {
  const list = byTestId('models-list');
  const active = byTestId('models-active');
  const selectStatus = byTestId('models-select-status');
  const selectBar = byTestId<HTMLProgressElement>('models-select-progress');
  const importInput = byTestId<HTMLInputElement>('models-import-input');
  const importStatus = byTestId('models-import-status');
  const importBar = byTestId<HTMLProgressElement>('models-import-progress');
  const importMessage = byTestId('models-import-message');
  const importCancel = byTestId<HTMLButtonElement>('models-import-cancel');

  let busy = false;
  let importAbort: AbortController | null = null;
  let state: ModelsState | null = null;

  const progressText = (box: HTMLElement): HTMLElement => box.querySelector<HTMLElement>('.progress-text')!;

  function row(m: ModelEntry, activeId: string): HTMLLIElement {
    const isActive = m.id === activeId;
    const facts = [
      m.role === 'generator' ? 'answers' : 'search encoder',
      formatBytes(m.size),
      m.origin === 'packaged' ? 'packaged with Hearth' : 'imported',
      m.origin === 'imported' ? (m.verified ? 'verified' : 'not verified') : null,
      m.test_only ? 'test only' : null,
    ].filter((x): x is string => x !== null);
    const li = h(
      'li',
      { class: `model-row${isActive ? ' active' : ''}`, testid: 'model-row', data: { id: m.id, active: String(isActive), role: m.role } },
      h('div', { class: 'doc-main' }, h('span', { class: 'doc-title', text: m.name || modelName(m.id), title: m.id }), h('span', { class: 'doc-meta', text: facts.join(' · ') })),
    );
    if (m.role === 'generator') {
      if (isActive) {
        li.append(h('span', { class: 'badge-active', text: 'Answering' }));
      } else {
        const use = h('button', {
          class: 'small',
          testid: 'model-select',
          text: 'Use',
          attrs: { type: 'button', 'aria-label': `Use ${m.name || m.id} to answer` },
          data: { id: m.id },
        });
        use.disabled = busy;
        use.addEventListener('click', () => void select(m));
        li.append(use);
      }
    }
    return li;
  }

  function show(s: ModelsState): void {
    state = s;
    list.replaceChildren(...s.models.map((m) => row(m, s.active)));
    const current = s.models.find((m) => m.id === s.active);
    active.textContent = `Answering model: ${current ? current.name || modelName(current.id) : modelName(s.active)}`;
    active.dataset.id = s.active;
  }

  async function refresh(): Promise<void> {
    try {
      show(await ctx.client.call({ type: 'models.list' }));
    } catch (e) {
      list.replaceChildren(h('li', { class: 'error', text: `Could not list the models: ${errorMessage(e)}` }));
    }
  }

  function setBusy(b: boolean): void {
    busy = b;
    for (const btn of list.querySelectorAll<HTMLButtonElement>('[data-testid="model-select"]')) btn.disabled = b;
    byTestId<HTMLButtonElement>('models-import-choose').disabled = b;
  }

  async function select(m: ModelEntry): Promise<void> {
    if (busy) return;
    setBusy(true);
    selectStatus.hidden = false;
    selectStatus.dataset.state = 'loading';
    setProgress(selectBar, 0, 0);
    progressText(selectStatus).textContent = `Loading ${m.name || m.id}…`;
    try {
      const s = await ctx.client.call(
        { type: 'models.select', id: m.id },
        {
          onProgress: (p) => {
            if ('loaded' in p) {
              setProgress(selectBar, p.loaded, p.total);
              const pct = p.total > 0 ? ` ${Math.floor((100 * p.loaded) / p.total)}%` : '';
              progressText(selectStatus).textContent = `Loading ${p.what || m.name}…${pct}`;
            } else if ('step' in p) {
              progressText(selectStatus).textContent = p.step;
            }
          },
        },
      );
      show(s);
      selectStatus.dataset.state = 'done';
      selectStatus.hidden = true;
      clearError();
    } catch (e) {
      selectStatus.dataset.state = 'error';
      selectBar.hidden = true;
      progressText(selectStatus).textContent = `Could not load ${m.name || m.id}: ${errorMessage(e)}`;
      ctx.reportError(e);
    } finally {
      selectBar.hidden = false;
      setBusy(false);
    }
  }

  async function importFolder(files: File[]): Promise<void> {
    if (busy) return;
    setBusy(true);
    importStatus.hidden = false;
    importStatus.dataset.state = 'copying';
    importMessage.textContent = '';
    importMessage.className = 'message';
    setProgress(importBar, 0, 0);
    progressText(importStatus).textContent = 'Checking the folder…';
    try {
      importAbort = new AbortController();
      importCancel.hidden = false;
      const { id, summary } = await importModelFolder(
        files,
        (p) => {
          setProgress(importBar, p.copied, p.total);
          importStatus.dataset.state = p.phase;
          progressText(importStatus).textContent = progressLine(p);
        },
        importAbort.signal,
      );
      importCancel.hidden = true;
      progressText(importStatus).textContent = 'Registering the model…';
      show(await ctx.client.call({ type: 'models.imported', id }));
      importStatus.dataset.state = 'done';
      importStatus.hidden = true;
      importMessage.textContent = `${summary} Press “Use” to answer with it.`;
      importMessage.classList.add('ok');
    } catch (e) {
      importStatus.dataset.state = 'error';
      importStatus.hidden = true;
      importMessage.textContent = `Could not import the folder: ${errorMessage(e)}`;
      importMessage.classList.add('error');
    } finally {
      importAbort = null;
      importCancel.hidden = true;
      setBusy(false);
    }
  }

  importCancel.addEventListener('click', () => importAbort?.abort());
  byTestId('models-import-choose').addEventListener('click', () => importInput.click());
  importInput.addEventListener('change', () => {
    const files = importInput.files === null ? [] : Array.from(importInput.files);
    importInput.value = '';
    if (files.length > 0) void importFolder(files);
  });

  let lastModel = '';
  ctx.onStatus((s: EngineStatus) => {
    // Another page (or the worker after a restart) may have changed the answering model.
    if (state !== null && s.generator.model !== lastModel) {
      lastModel = s.generator.model;
      void refresh();
    }
  });

  return { refresh };
}

function progressLine(p: ImportProgress): string {
  const bytes = `${formatBytes(p.copied)} of ${formatBytes(p.total)}`;
  switch (p.phase) {
    case 'copying':
      return `Copying ${p.path || 'files'}… ${bytes}`;
    case 'hashing':
      return `Checking ${p.path || 'files'} (sha256)… ${bytes}`;
    case 'quantising':
      return `Quantising to INT4… ${p.copied} of ${p.total} tensors`;
    case 'writing':
      return `Writing the pack… ${bytes}`;
  }
}
