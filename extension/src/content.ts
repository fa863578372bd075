// Injected on demand by the service worker (`chrome.scripting.executeScript({ files: ['content.js'] })`)
// into the active tab's isolated world. It defines `globalThis.__hearth = { capture, highlight }` and
// nothing else; the worker then calls them with `executeScript({ func })`.
//
// A classic script (esbuild wraps it in an IIFE); `@mozilla/readability` is bundled in.

import { Readability } from '@mozilla/readability';
import type { PageCapture } from './messages.js';

/** Enough for a long article; the knowledge base chunks it later. */
const MAX_CHARS = 500_000;
/** The article HTML carries markup as well as the text: a proportionally larger bound. */
const MAX_HTML_CHARS = 4 * MAX_CHARS;

// ---- Visibility: an element the reader cannot see must not reach the index ----

/** Whether `el` (in the live page) is hidden from a reader, judged on its own box and style. */
function isHidden(el: Element): boolean {
  if (el.hasAttribute('hidden') || el.getAttribute('aria-hidden') === 'true') return true;
  const style = getComputedStyle(el);
  if (style.display === 'none' || style.visibility === 'hidden' || style.visibility === 'collapse') return true;
  if (Number.parseFloat(style.opacity) === 0) return true;
  if (style.display === 'contents') return false;
  const tag = el.tagName;
  if (tag === 'BR' || tag === 'WBR') return false;
  const rect = el.getBoundingClientRect();
  // Zero size: hidden when it clips what it holds, or holds no elements that could overflow it
  // (text has no box of its own there). "Visually hidden" helpers are 1×1 with overflow hidden.
  if (rect.width <= 1 && rect.height <= 1) {
    const clips = style.overflow !== 'visible' || style.clip !== 'auto';
    if (clips || el.childElementCount === 0) return true;
  }
  // Entirely off-screen (left: -9999px and the like), in page coordinates unless fixed.
  const fixed = style.position === 'fixed';
  const dx = fixed ? 0 : window.scrollX;
  const dy = fixed ? 0 : window.scrollY;
  if (rect.right + dx <= 0 || rect.bottom + dy <= 0) return true;
  const pageWidth = Math.max(document.documentElement.scrollWidth, window.innerWidth);
  if (rect.left + dx >= pageWidth + 1000) return true;
  return false;
}

/** Removes from `clone` (a copy of the live `body`) every element whose live twin is hidden.
 *  The two trees are walked in lockstep: `cloneNode(true)` keeps element children in order. */
function removeHidden(live: Element, clone: Element): void {
  const liveKids = Array.from(live.children);
  const cloneKids = Array.from(clone.children);
  if (liveKids.length !== cloneKids.length) return; // The page changed under us: keep what we have.
  for (let i = 0; i < liveKids.length; i++) {
    const l = liveKids[i]!;
    const c = cloneKids[i]!;
    if (isHidden(l)) c.remove();
    else removeHidden(l, c);
  }
}

const BLOCKS = new Set([
  'ADDRESS', 'ARTICLE', 'ASIDE', 'BLOCKQUOTE', 'DD', 'DETAILS', 'DIV', 'DL', 'DT', 'FIELDSET', 'FIGCAPTION', 'FIGURE',
  'FOOTER', 'FORM', 'H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'HEADER', 'HR', 'LI', 'MAIN', 'NAV', 'OL', 'P', 'PRE',
  'SECTION', 'SUMMARY', 'TABLE', 'TR', 'UL',
]);

/** The text of `root` as a reader sees it: blocks separated by blank lines, source line breaks
 *  inside a paragraph folded into spaces (`<pre>` keeps its lines). */
function blockText(root: Node): string {
  const out: string[] = [];
  const walk = (n: Node, pre: boolean): void => {
    if (n.nodeType === Node.TEXT_NODE) {
      const data = (n as Text).data;
      out.push(pre ? data : data.replace(/\s+/g, ' '));
      return;
    }
    if (n.nodeType !== Node.ELEMENT_NODE) return;
    const tag = (n as Element).tagName;
    if (tag === 'SCRIPT' || tag === 'STYLE' || tag === 'NOSCRIPT' || tag === 'TEMPLATE') return;
    if (tag === 'BR') {
      out.push('\n');
      return;
    }
    const block = BLOCKS.has(tag);
    if (block) out.push('\n\n');
    if (tag === 'TD' || tag === 'TH') out.push(' ');
    for (const c of Array.from(n.childNodes)) walk(c, pre || tag === 'PRE');
    if (block) out.push('\n\n');
  };
  walk(root, false);
  return out
    .join('')
    .replace(/[ \t\u00a0]*\n[ \t\u00a0]*/g, '\n')
    .replace(/[ \t\u00a0]{2,}/g, ' ')
    .replace(/\n{3,}/g, '\n\n')
    .trim();
}

function cut(s: string, max: number): [string, boolean] {
  return s.length > max ? [s.slice(0, max), true] : [s, false];
}

/** The page's main content: Readability over a clone without the hidden elements. */
function capture(): PageCapture {
  const base = { url: location.href, title: document.title, capturedAt: Date.now() };
  const selection = window.getSelection()?.toString().trim() ?? '';
  if (selection.length > 0) {
    const [text, truncated] = cut(selection, MAX_CHARS);
    return { ...base, text, html: '', fromSelection: true, truncated };
  }
  const doc = document.cloneNode(true) as Document;
  if (document.body !== null && doc.body !== null) removeHidden(document.body, doc.body);
  let html = '';
  let text = '';
  let title = document.title;
  try {
    // The serializer hands back the article element itself: its HTML for the parser, its text here.
    const article = new Readability<Element>(doc, { charThreshold: 200, serializer: (n) => n as Element }).parse();
    if (article?.content) {
      html = article.content.innerHTML;
      text = blockText(article.content);
      if (article.title) title = article.title;
    }
  } catch (e) {
    console.warn('hearth: Readability failed', e);
  }
  if (text.trim() === '') {
    // Not an article (a short or app-like page): the visible body without scripts and styles.
    // Readability may have emptied the clone, so clone again.
    const again = document.cloneNode(true) as Document;
    if (document.body !== null && again.body !== null) {
      removeHidden(document.body, again.body);
      for (const e of again.body.querySelectorAll('script, style, noscript, template, iframe, object, embed')) e.remove();
      html = again.body.innerHTML;
      text = blockText(again.body);
    }
  }
  const [t, textCut] = cut(text, MAX_CHARS);
  const [h, htmlCut] = cut(html, MAX_HTML_CHARS);
  return { ...base, title: title || base.url, text: t, html: h, fromSelection: false, truncated: textCut || htmlCut };
}

// ---- Highlighting a quoted passage in the live page ----

const HIGHLIGHT = 'hearth';
const STYLE_ID = 'hearth-highlight-style';

interface TextIndex {
  /** Visible text, whitespace collapsed to single spaces, lower-cased. */
  text: string;
  /** For each character of `text`: its text node and offset. */
  nodes: Text[];
  offsets: number[];
}

function visibleTextIndex(): TextIndex {
  const index: TextIndex = { text: '', nodes: [], offsets: [] };
  const parts: string[] = [];
  if (document.body === null) return index;
  const skip = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'TEXTAREA']);
  const visible = new Map<Element, boolean>();
  const isVisible = (el: Element): boolean => {
    let v = visible.get(el);
    if (v === undefined) {
      v = !skip.has(el.tagName) && el.checkVisibility({ opacityProperty: true, visibilityProperty: true });
      visible.set(el, v);
    }
    return v;
  };
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  let lastSpace = true;
  for (let n = walker.nextNode(); n !== null; n = walker.nextNode()) {
    const node = n as Text;
    const parent = node.parentElement;
    if (parent === null || !isVisible(parent)) continue;
    const data = node.data;
    for (let i = 0; i < data.length; i++) {
      const ch = data[i]!;
      if (/\s/.test(ch)) {
        if (lastSpace) continue;
        parts.push(' ');
        lastSpace = true;
      } else {
        parts.push(ch.toLowerCase());
        lastSpace = false;
      }
      index.nodes.push(node);
      index.offsets.push(i);
    }
    // Text in separate block elements is separated by a space.
    if (!lastSpace) {
      parts.push(' ');
      index.nodes.push(node);
      index.offsets.push(data.length);
      lastSpace = true;
    }
  }
  index.text = parts.join('');
  return index;
}

/** Words of a quote, without bare Markdown markers (`#`, `-`, `*`, `>`, `•`, numbers like `1.`). */
function quoteWords(quote: string): string[] {
  return quote
    .toLowerCase()
    .split(/\s+/)
    .filter((w) => w !== '' && !/^(#+|[-*+>•]|\d+[.)])$/.test(w));
}

/** Where in `text` the quote (or a long enough run of its words) appears: [start, end). */
function locate(text: string, quote: string): [number, number] | null {
  const words = quoteWords(quote);
  if (words.length === 0) return null;
  const whole = words.join(' ');
  let at = text.indexOf(whole);
  if (at >= 0) return [at, at + whole.length];
  // The first ~20 words, then shorter runs from the start and further in.
  for (const n of [20, 12, 8]) {
    if (words.length < n && n !== 8) continue;
    for (let start = 0; start + Math.min(n, words.length) <= words.length; start += Math.max(1, Math.floor(n / 2))) {
      const run = words.slice(start, start + n).join(' ');
      if (run.length < 12) continue;
      at = text.indexOf(run);
      if (at >= 0) return [at, at + run.length];
    }
  }
  return null;
}

function highlight(quote: string): boolean {
  const index = visibleTextIndex();
  const found = locate(index.text, quote);
  if (found === null) return false;
  const [s, e] = found;
  const last = e - 1;
  const range = document.createRange();
  range.setStart(index.nodes[s]!, index.offsets[s]!);
  range.setEnd(index.nodes[last]!, Math.min(index.offsets[last]! + 1, index.nodes[last]!.length));
  if (typeof Highlight === 'function' && CSS.highlights !== undefined) {
    if (document.getElementById(STYLE_ID) === null) {
      const style = document.createElement('style');
      style.id = STYLE_ID;
      style.textContent = `::highlight(${HIGHLIGHT}) { background-color: #ffd54f; color: #1d1a18; }`;
      (document.head ?? document.documentElement).append(style);
    }
    CSS.highlights.set(HIGHLIGHT, new Highlight(range));
  }
  const target = range.startContainer.parentElement;
  target?.scrollIntoView({ block: 'center', behavior: 'smooth' });
  return true;
}

(globalThis as unknown as { __hearth: unknown }).__hearth = { capture, highlight };
