// The Library tab: drop or choose files, watch each one being parsed and embedded, list and delete
// what the library holds.

import type { DocListing, EngineStatus } from '../messages.js';
import { parseFile } from '../parse-client.js';
import type { PanelContext } from './context.js';
import { byTestId, errorMessage, formatBytes, formatDate, h, setProgress } from './dom.js';
import { clearError } from './status.js';

/** File types the parser reads, by extension, with the MIME type it is told. */
const TYPES: Record<string, string> = {
  pdf: 'application/pdf',
  docx: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  md: 'text/markdown',
  markdown: 'text/markdown',
  txt: 'text/plain',
  text: 'text/plain',
  html: 'text/html',
  htm: 'text/html',
};
const KIND_NAMES: Record<string, string> = { pdf: 'PDF', docx: 'Word', markdown: 'Markdown', text: 'Text', html: 'HTML' };
/** Larger files are refused before reading them into memory. */
const MAX_FILE_BYTES = 512 * 1024 * 1024;

/** The contract's states; a file waiting its turn is `parsing` with `data-queued`. */
type RowState = 'parsing' | 'embedding' | 'done' | 'error';

interface ProgressRow {
  li: HTMLLIElement;
  text: HTMLSpanElement;
  bar: HTMLProgressElement;
}

export function mimeFor(name: string): string | null {
  const ext = name.toLowerCase().split('.').pop() ?? '';
  return name.includes('.') ? (TYPES[ext] ?? null) : null;
}

export function setupLibraryTab(ctx: PanelContext): { refresh(): Promise<void> } {
  const input = byTestId<HTMLInputElement>('library-file-input');
  const drop = byTestId('library-drop');
  const progressList = byTestId('library-progress-list');
  const list = byTestId('library-list');
  const empty = byTestId('library-empty');
  const count = byTestId('library-count');
  const emptyText = empty.textContent ?? '';

  const queue: { file: File; row: ProgressRow }[] = [];
  let working = false;

  function progressRow(file: File): ProgressRow {
    const text = h('span', { class: 'state-text' });
    const bar = h('progress', { attrs: { 'aria-label': `Progress of ${file.name}` } });
    const li = h('li', { class: 'progress-row', testid: 'library-progress', data: { file: file.name } }, h('span', { class: 'file-name', text: file.name }), text, bar);
    progressList.append(li);
    return { li, text, bar };
  }

  function setRow(row: ProgressRow, state: RowState, text: string, done = 0, total = 0, queued = false): void {
    row.li.dataset.state = state;
    row.li.dataset.queued = String(queued);
    row.text.textContent = text;
    row.bar.hidden = state === 'done' || state === 'error';
    if (state === 'embedding') setProgress(row.bar, done, total);
    else row.bar.removeAttribute('value');
  }

  async function addOne(file: File, row: ProgressRow): Promise<void> {
    const mime = mimeFor(file.name);
    if (mime === null) {
      setRow(row, 'error', `${file.name} is not a supported file: Hearth reads PDF, Word (DOCX), Markdown, text and HTML files.`);
      return;
    }
    if (file.size > MAX_FILE_BYTES) {
      setRow(row, 'error', `${file.name} is too large (${formatBytes(file.size)}; at most ${formatBytes(MAX_FILE_BYTES)}).`);
      return;
    }
    setRow(row, 'parsing', 'Reading…');
    let parsed;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      parsed = await parseFile(bytes, { source: file.name, file_name: file.name, mime });
    } catch (e) {
      setRow(row, 'error', `could not read ${file.name}: ${errorMessage(e)}`);
      return;
    }
    if (parsed.chunks.length === 0) {
      setRow(row, 'error', `could not read ${file.name}: no text found in it`);
      return;
    }
    const total = parsed.chunks.length;
    setRow(row, 'embedding', `Embedding 0/${total}`, 0, total);
    try {
      const r = await ctx.client.call(
        { type: 'library.add', parsed },
        {
          onProgress: (p) => {
            if ('embedded' in p) setRow(row, 'embedding', `Embedding ${p.embedded}/${p.total}`, p.embedded, p.total);
            else if ('loaded' in p) row.text.textContent = `Loading ${p.what}…`;
            else if ('step' in p) row.text.textContent = p.step;
          },
        },
      );
      const what = r.status === 'unchanged' ? 'already in the library' : r.status === 'replaced' ? 'updated' : 'added';
      setRow(row, 'done', `Done: ${what} (${r.chunks} passage${r.chunks === 1 ? '' : 's'})`);
      clearError();
    } catch (e) {
      setRow(row, 'error', `could not add ${file.name}: ${errorMessage(e)}`);
      ctx.reportError(e);
    }
  }

  async function work(): Promise<void> {
    if (working) return;
    working = true;
    try {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        await addOne(next.file, next.row);
        await refresh();
      }
    } finally {
      working = false;
    }
  }

  function enqueue(files: Iterable<File>): void {
    for (const file of files) {
      const row = progressRow(file);
      setRow(row, 'parsing', 'Waiting…', 0, 0, true);
      queue.push({ file, row });
    }
    void work();
  }

  byTestId('library-choose').addEventListener('click', () => input.click());
  input.addEventListener('change', () => {
    if (input.files !== null) enqueue(Array.from(input.files));
    input.value = '';
  });
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    if (e.dataTransfer) e.dataTransfer.dropEffect = 'copy';
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer?.files) enqueue(Array.from(e.dataTransfer.files));
  });

  function docRow(d: DocListing): HTMLLIElement {
    const del = h('button', {
      class: 'secondary small',
      testid: 'library-delete',
      text: 'Delete',
      attrs: { type: 'button', 'aria-label': `Delete ${d.title || d.source} from the library` },
    });
    const li = h(
      'li',
      { class: 'doc-row', testid: 'library-row', data: { source: d.source, id: d.id } },
      h(
        'div',
        { class: 'doc-main' },
        h('span', { class: 'doc-title', text: d.title || d.source, title: d.source }),
        h('span', {
          class: 'doc-meta',
          text: [KIND_NAMES[d.kind] ?? d.kind, formatBytes(d.size), `added ${formatDate(d.added_unix_ms)}`, `${d.chunks} passage${d.chunks === 1 ? '' : 's'}`].join(' · '),
        }),
      ),
      del,
    );
    del.addEventListener('click', () => {
      del.disabled = true;
      ctx.client.call({ type: 'library.remove', id: d.id }).then(
        () => refresh(),
        (e: unknown) => {
          del.disabled = false;
          li.append(h('p', { class: 'error', text: `Could not delete: ${errorMessage(e)}` }));
        },
      );
    });
    return li;
  }

  let refreshing: Promise<void> | null = null;
  let again = false;
  /** Reloads the list (coalescing refreshes asked for while one runs). */
  async function refresh(): Promise<void> {
    if (refreshing !== null) {
      again = true;
      return refreshing;
    }
    refreshing = (async () => {
      do {
        again = false;
        try {
          const docs = await ctx.client.call({ type: 'library.list' });
          docs.sort((a, b) => b.added_unix_ms - a.added_unix_ms);
          list.replaceChildren(...docs.map(docRow));
          empty.hidden = docs.length > 0;
          empty.textContent = emptyText;
          count.textContent = docs.length > 0 ? `(${docs.length})` : '';
          list.dataset.count = String(docs.length);
        } catch (e) {
          empty.hidden = false;
          empty.textContent = `Could not list the library: ${errorMessage(e)}`;
        }
      } while (again);
    })();
    try {
      await refreshing;
    } finally {
      refreshing = null;
    }
  }

  let seen = '';
  ctx.onStatus((s: EngineStatus) => {
    const key = `${s.documents}/${s.chunks}`;
    if (key !== seen) {
      seen = key;
      void refresh();
    }
  });

  return { refresh };
}
