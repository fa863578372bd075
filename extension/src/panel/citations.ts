// Citation chips under an answer, and the passage viewer for library sources.
//
// A chip for the captured page asks the worker to highlight the passage in the tab
// (`page.highlight`); a chip for a library document opens the viewer with the passage's title,
// page number, heading and text.

import type { HearthClient } from '../client.js';
import type { CitationView } from '../messages.js';
import { byTestId, errorMessage, h } from './dom.js';

/** Fills `into` with one chip per citation (in order of their numbers, each once). */
export function renderChips(client: HearthClient, citations: CitationView[], into: HTMLElement): void {
  const seen = new Set<number>();
  const chips = citations
    .filter((c) => (seen.has(c.n) ? false : (seen.add(c.n), true)))
    .sort((a, b) => a.n - b.n)
    .map((c) => chip(client, c));
  into.replaceChildren(...chips);
  if (chips.length > 0) into.prepend(h('span', { class: 'chips-label', text: 'Sources:' }));
}

function chipLabel(c: CitationView): string {
  const name = c.title || c.source;
  const page = c.page !== null ? `, p. ${c.page}` : '';
  return `[${c.n}] ${name.length > 40 ? `${name.slice(0, 39)}…` : name}${page}`;
}

function chip(client: HearthClient, c: CitationView): HTMLButtonElement {
  const b = h('button', {
    class: `chip chip-${c.origin}`,
    testid: 'citation-chip',
    text: chipLabel(c),
    title: c.heading ? `${c.title || c.source} › ${c.heading}` : c.title || c.source,
    attrs: { type: 'button' },
    data: { n: String(c.n), source: c.source, page: c.page !== null ? String(c.page) : '', origin: c.origin },
  });
  b.setAttribute(
    'aria-label',
    c.origin === 'page' ? `Source ${c.n}: show the passage on the page` : `Source ${c.n}: show the passage from ${c.title || c.source}`,
  );
  b.addEventListener('click', () => {
    if (c.origin === 'library') {
      showPassage(c);
      return;
    }
    b.dataset.found = 'pending';
    client.call({ type: 'page.highlight', url: c.source, quote: c.quote }).then(
      (r) => {
        b.dataset.found = String(r.found);
        if (!r.found) showPassage(c, 'This passage could not be found on the page any more; here is the text.');
      },
      (e: unknown) => {
        b.dataset.found = 'false';
        showPassage(c, `Could not show it on the page (${errorMessage(e)}); here is the text.`);
      },
    );
  });
  return b;
}

/** Opens the passage viewer for `c` (optionally with a note above it). */
export function showPassage(c: CitationView, note?: string): void {
  const view = byTestId('passage-view');
  byTestId('passage-title').textContent = c.title || c.source;
  const meta: string[] = [];
  if (c.page !== null) meta.push(`Page ${c.page}`);
  if (c.heading) meta.push(c.heading);
  if (c.title && c.source !== c.title) meta.push(c.source);
  const metaEl = byTestId('passage-meta');
  metaEl.replaceChildren(
    ...meta.map((m, i) => h('span', { class: i === 0 && c.page !== null ? 'page' : 'part', text: m, testid: i === 0 && c.page !== null ? 'passage-page' : undefined })),
  );
  if (note !== undefined) metaEl.prepend(h('span', { class: 'note', text: note }));
  byTestId('passage-quote').textContent = c.quote;
  view.dataset.n = String(c.n);
  view.dataset.source = c.source;
  view.hidden = false;
  byTestId<HTMLButtonElement>('passage-close').focus();
}

export function hidePassage(): void {
  byTestId('passage-view').hidden = true;
}

/** Wires the viewer's close button and Escape. */
export function setupPassageView(): void {
  byTestId('passage-close').addEventListener('click', hidePassage);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && !byTestId('passage-view').hidden) hidePassage();
  });
}
