// A small, safe Markdown renderer for the assistant's answers: it builds DOM nodes (never parses
// HTML), so whatever the model writes — tags, scripts, `javascript:` links — ends up as text.
//
// Supported: paragraphs (single newlines become line breaks), ATX headings, bullet and numbered
// lists (nested by indentation), emphasis and strong emphasis, inline code and fenced code blocks,
// blockquotes, horizontal rules. Links are shown as their text followed by the full address, as
// plain text (nothing is fetched or navigated to); images are shown as "[image: alt]".

const MAX_DEPTH = 8;

const FENCE = /^\s{0,3}(`{3,}|~{3,})\s*([^`\s]*)/;
const HEADING = /^\s{0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^\s{0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^\s{0,3}>\s?/;
const ITEM = /^(\s*)([-*+•]|\d{1,9}[.)])\s+(.*)$/;

/** Renders `src` as a fragment of safe DOM nodes. */
export function renderMarkdown(src: string, doc: Document = document): DocumentFragment {
  const frag = doc.createDocumentFragment();
  frag.append(...blocks(src.replace(/\r\n?/g, '\n').split('\n'), doc, 0));
  return frag;
}

function indentOf(line: string): number {
  const m = /^\s*/.exec(line);
  return m === null ? 0 : m[0].replace(/\t/g, '    ').length;
}

function isBlank(line: string): boolean {
  return line.trim() === '';
}

function startsBlock(line: string): boolean {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
}

function blocks(lines: string[], doc: Document, depth: number): Node[] {
  const out: Node[] = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (isBlank(line)) {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence !== null) {
      const marker = fence[1]!;
      const body: string[] = [];
      i++;
      while (i < lines.length && !lines[i]!.trim().startsWith(marker)) body.push(lines[i++]!);
      i++; // The closing fence (or the end).
      const pre = doc.createElement('pre');
      const code = doc.createElement('code');
      if (fence[2]) code.dataset.lang = fence[2];
      code.textContent = body.join('\n');
      pre.append(code);
      out.push(pre);
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading !== null) {
      const level = heading[1]!.length;
      const h = doc.createElement(`h${Math.min(6, level + 2)}`);
      h.className = `md-h${level}`;
      h.append(...inline(heading[2] ?? '', doc));
      out.push(h);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      out.push(doc.createElement('hr'));
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner: string[] = [];
      while (i < lines.length && QUOTE.test(lines[i]!)) inner.push(lines[i++]!.replace(QUOTE, ''));
      const q = doc.createElement('blockquote');
      if (depth < MAX_DEPTH) q.append(...blocks(inner, doc, depth + 1));
      else q.textContent = inner.join('\n');
      out.push(q);
      continue;
    }
    if (ITEM.test(line)) {
      i = list(lines, i, doc, depth, out);
      continue;
    }
    const para: string[] = [];
    while (i < lines.length && !isBlank(lines[i]!) && (para.length === 0 || !startsBlock(lines[i]!))) {
      para.push(lines[i++]!.trim());
    }
    const p = doc.createElement('p');
    para.forEach((l, k) => {
      if (k > 0) p.append(doc.createElement('br'));
      p.append(...inline(l, doc));
    });
    out.push(p);
  }
  return out;
}

/** Parses the list starting at `lines[start]` into `out`; returns the index after it. */
function list(lines: string[], start: number, doc: Document, depth: number, out: Node[]): number {
  const first = ITEM.exec(lines[start]!)!;
  const base = indentOf(first[1]!);
  const ordered = /\d/.test(first[2]!);
  const el = doc.createElement(ordered ? 'ol' : 'ul');
  if (ordered) {
    const n = Number.parseInt(first[2]!, 10);
    if (n !== 1) el.setAttribute('start', String(n));
  }
  const items: string[][] = [];
  let i = start;
  while (i < lines.length) {
    const line = lines[i]!;
    const m = ITEM.exec(line);
    if (m !== null && indentOf(m[1]!) <= base + 1 && /\d/.test(m[2]!) === ordered) {
      items.push([m[3]!]);
      i++;
      continue;
    }
    if (m !== null && indentOf(m[1]!) <= base + 1) break; // A list of the other kind.
    const current = items[items.length - 1];
    if (current === undefined) break;
    if (isBlank(line)) {
      // A blank line ends the list unless what follows is indented or another item.
      let j = i + 1;
      while (j < lines.length && isBlank(lines[j]!)) j++;
      const next = lines[j];
      if (next === undefined) break;
      const nm = ITEM.exec(next);
      const sameList = nm !== null && indentOf(nm[1]!) <= base + 1 && /\d/.test(nm[2]!) === ordered;
      if (!sameList && indentOf(next) <= base) break;
      current.push('');
      i++;
      continue;
    }
    if (indentOf(line) > base) {
      current.push(line.slice(Math.min(indentOf(line), base + 2)));
      i++;
      continue;
    }
    if (!startsBlock(line)) {
      current.push(line); // A lazy continuation line.
      i++;
      continue;
    }
    break;
  }
  for (const item of items) {
    const li = doc.createElement('li');
    const content = depth < MAX_DEPTH ? blocks(item, doc, depth + 1) : [doc.createTextNode(item.join('\n'))];
    // A tight item (no blank line in it) holds its first paragraph's text directly.
    const first = content[0];
    if (!item.includes('') && first instanceof HTMLParagraphElement) content.splice(0, 1, ...Array.from(first.childNodes));
    li.append(...content);
    el.append(li);
  }
  out.push(el);
  return i;
}

// ---- Inline: code, images, links, autolinks, strong, emphasis ----

const INLINE = new RegExp(
  [
    /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source, // 1, 2: code
    /!\[([^\]]*)\]\(\s*((?:[^()\s]|\([^()\s]*\))*)[^)]*\)/.source, // 3, 4: image
    /\[([^\]]+)\]\(\s*((?:[^()\s]|\([^()\s]*\))+)[^)]*\)/.source, // 5, 6: link (one level of parentheses)
    /<((?:https?|mailto|ftp):[^>\s]+)>/.source, // 7: autolink
    /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 8: strong
    /__(?=\S)([\s\S]*?\S)__(?![A-Za-z0-9])/.source, // 9: strong
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*/.source, // 10: emphasis
    /(?<![A-Za-z0-9_])_(?=[^\s_])([\s\S]*?[^\s_])_(?![A-Za-z0-9_])/.source, // 11: emphasis
  ].join('|'),
  'g',
);

function inline(text: string, doc: Document, depth = 0): Node[] {
  const out: Node[] = [];
  let last = 0;
  const re = new RegExp(INLINE.source, 'g');
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    if (m.index > last) out.push(doc.createTextNode(text.slice(last, m.index)));
    last = m.index + m[0].length;
    const nested = (s: string): Node[] => (depth < MAX_DEPTH ? inline(s, doc, depth + 1) : [doc.createTextNode(s)]);
    if (m[2] !== undefined) {
      const code = doc.createElement('code');
      code.textContent = m[2].replace(/^ (.*) $/, '$1');
      out.push(code);
    } else if (m[4] !== undefined) {
      const alt = m[3] ? `: ${m[3]}` : '';
      out.push(doc.createTextNode(`[image${alt}]`));
    } else if (m[6] !== undefined) {
      out.push(link(m[5] ?? m[6], m[6], doc, nested));
    } else if (m[7] !== undefined) {
      out.push(link(m[7], m[7], doc, nested));
    } else if (m[8] !== undefined || m[9] !== undefined) {
      const b = doc.createElement('strong');
      b.append(...nested((m[8] ?? m[9])!));
      out.push(b);
    } else if (m[10] !== undefined || m[11] !== undefined) {
      const e = doc.createElement('em');
      e.append(...nested((m[10] ?? m[11])!));
      out.push(e);
    }
  }
  if (last < text.length) out.push(doc.createTextNode(text.slice(last)));
  return out;
}

/** A link as text: its label, then its full address in brackets (not clickable). */
function link(label: string, href: string, doc: Document, nested: (s: string) => Node[]): Node {
  const span = doc.createElement('span');
  span.className = 'md-link';
  if (label !== href) {
    span.append(...nested(label), doc.createTextNode(' '));
  }
  const url = doc.createElement('span');
  url.className = 'md-url';
  url.textContent = label !== href ? `(${href})` : href;
  span.append(url);
  return span;
}

/** What an answer that came back blank renders as. */
export function emptyAnswer(): HTMLElement {
  const p = document.createElement('p');
  p.className = 'empty-answer';
  p.textContent = 'The model returned no text. Its sources are listed below.';
  return p;
}
