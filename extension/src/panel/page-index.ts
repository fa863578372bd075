// Capturing the active tab and indexing it for "This page" (shared by the page and chat tabs).

import type { HearthClient } from '../client.js';
import type { PageCapture, ParsedDocument, TaskProgress } from '../messages.js';
import { parseFile } from '../parse-client.js';

/** What was last indexed from this panel (to skip re-indexing an unchanged page). */
let indexed: { url: string; fromSelection: boolean; chars: number } | null = null;

/** Parses a capture in the parse worker: its article HTML, or its text (a selection). */
export function parseCapture(cap: PageCapture): Promise<ParsedDocument> {
  const useHtml = cap.html.trim() !== '';
  const body = useHtml ? cap.html : cap.text;
  if (body.trim() === '') return Promise.reject(new Error('this page has no readable text'));
  return parseFile(new TextEncoder().encode(body), {
    source: cap.url,
    mime: useHtml ? 'text/html' : 'text/plain',
    title: cap.title || cap.url,
  });
}

function describe(p: TaskProgress): string | null {
  if ('embedded' in p) return `Indexing the page… ${p.embedded}/${p.total}`;
  if ('loaded' in p) return `Loading ${p.what}… ${p.total > 0 ? Math.floor((100 * p.loaded) / p.total) : 0}%`;
  if ('step' in p) return p.step;
  return null;
}

export interface IndexOptions {
  /** Re-index even if the same page is indexed already. */
  force?: boolean;
  onStep?: (text: string) => void;
  signal?: AbortSignal;
}

/** Captures the active tab and indexes it unless it is the page indexed already. */
export async function ensurePageIndexed(client: HearthClient, opts: IndexOptions = {}): Promise<PageCapture> {
  const step = opts.onStep ?? (() => undefined);
  step('Reading the page…');
  const cap = await client.call({ type: 'page.capture' }, signalOpt(opts.signal));
  if (!opts.force && indexed !== null && indexed.url === cap.url && indexed.fromSelection === cap.fromSelection && indexed.chars === cap.text.length) {
    // The worker keeps the page in memory only: check it still has it (it may have restarted).
    const st = await client.call({ type: 'status' });
    if (st.page?.url === cap.url) return cap;
  }
  step('Reading the page… (parsing)');
  const parsed = await parseCapture(cap);
  if (parsed.chunks.length === 0) throw new Error('this page has no readable text');
  step(`Indexing the page… 0/${parsed.chunks.length}`);
  indexed = null;
  await client.call(
    { type: 'page.index', parsed },
    {
      ...signalOpt(opts.signal),
      onProgress: (p) => {
        const text = describe(p);
        if (text !== null) step(text);
      },
    },
  );
  indexed = { url: cap.url, fromSelection: cap.fromSelection, chars: cap.text.length };
  return cap;
}

/** `{ signal }` when there is one (the options type is exact). */
export function signalOpt(signal: AbortSignal | undefined): { signal?: AbortSignal } {
  return signal === undefined ? {} : { signal };
}

export { describe as describeProgress };
