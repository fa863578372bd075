// Injected on demand (context menu + activeTab) into the current tab: sends its text to the worker.
// A classic script (esbuild wraps it in an IIFE), so it leaves no globals behind in the page.

import type { ContentMessage, PageCapture } from './messages.js';

/** Enough for a long article; the knowledge base chunks it later. */
const MAX_CHARS = 500_000;

function capture(): PageCapture {
  const selection = window.getSelection()?.toString().trim() ?? '';
  const fromSelection = selection.length > 0;
  const full = fromSelection ? selection : (document.body?.innerText ?? '');
  return {
    url: location.href,
    title: document.title,
    text: full.slice(0, MAX_CHARS),
    fromSelection,
    truncated: full.length > MAX_CHARS,
    capturedAt: Date.now(),
  };
}

const message: ContentMessage = { type: 'page.captured', capture: capture() };
chrome.runtime.sendMessage(message).catch((e: unknown) => console.warn('hearth: capture not delivered', e));
