// End to end through the REAL side panel of the unpacked extension (extension/dist) in Debian
// Chromium, WebGPU on SwiftShader: models load, "This page" summarizes a local article page
// (and its capture holds none of the page's hidden text), the Library takes a PDF and a Markdown
// file, Chat answers from the library citing page 2 of the PDF, a deleted document stays deleted,
// and after the service worker is stopped the index comes back from OPFS and answers again.
// Throughout: no request leaves chrome-extension:/data:/blob: (but the test page, fulfilled by the
// test itself) and no unexpected error in the service worker or the panel.
//
// Run: `make extension && node --test tests/browser/panel.test.mjs` (a few minutes on SwiftShader).
// Screenshots: tests/browser/screenshots/panel-<nn>-<step>.png; step timings:
// tests/browser/screenshots/panel-timings.json.
//
// The answering model is `test-words` (tests/fixtures/tiny/tiny-words.gguf, from
// scripts/make_tiny_models.py): SmolLM2's tokenizer and tiny-llama's shape and format, with
// constructed weights whose greedy answer to any prompt is WORDS (then <|im_end|>), as
// crates/hearth-models/tests/tiny_words.rs checks natively against the CPU reference. SwiftShader
// runs ~0.3 GFLOP/s, far too slow for SmolLM2 here. The answers are fixed, not meaningful: this
// test proves the plumbing, retrieval, citations and the rendering of real text, not answer
// quality (that is proven natively). The sentence cites [1]: in the chat, the one source given
// (page 2 of the PDF); in the summary, the article's first section.

import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { REPO, SCREENSHOTS, TEST_ORIGIN, launch, rpc, shippedManifest } from './harness.mjs';

const DOCS = join(REPO, 'tests', 'fixtures', 'docs');
const ARTICLE_URL = `${TEST_ORIGIN}/article.html`;
const QUESTION = 'Who lit the Varnholm lighthouse lamp for the first time?';
/** What `test-words` writes for every prompt (WORDS_SENTENCE in scripts/make_tiny_models.py). */
const WORDS = 'The test model wrote this [1].';
const MODEL = 'test-words';
const TRAPS = ['HIDDENTRAP1', 'HIDDENTRAP2', 'HIDDENTRAP3', 'HIDDENTRAP4', 'HIDDENTRAP5', 'HIDDENTRAP6', 'SCRIPTTRAP'];
const SECOND = 1000;
const MINUTE = 60 * SECOND;

/**
 * Service-worker log lines that are expected (each with why). Anything else fails the last test.
 * Empty so far: add a pattern here only with a reason.
 */
const EXPECTED_SW_ERRORS = [];

let h; // harness.launch
let panel; // the side panel page, opened as a tab
let article; // the test article page
const panelErrors = [];
const timings = []; // { step, ms }
const failed = new Set(); // steps that failed (later steps that need them say so)

before(async () => {
  h = await launch({ testOrigin: true });
  console.log(`# extension ${h.extId} (test copy ${h.extensionDir}); network namespace isolation: ${h.isolated ? 'on' : 'OFF'}`);
  await h.serve({
    '/article.html': { body: readFileSync(join(DOCS, 'article.html'), 'utf8') },
    '/favicon.ico': { body: '', contentType: 'image/x-icon' },
  });
  panel = await h.ctx.newPage();
  panel.setDefaultTimeout(60 * SECOND);
  panel.on('pageerror', (e) => panelErrors.push(`pageerror: ${e.message}`));
  panel.on('console', (m) => {
    if (m.type() === 'error') panelErrors.push(`console.error: ${m.text()}`);
  });
  // Test instrumentation (the panel's own code is unchanged): taps the panel's port to the worker
  // to count what each call streamed, so a failure can say whether the model produced anything.
  await panel.addInitScript(() => {
    const tap = { calls: {}, pieces: {}, errors: [], results: {} };
    globalThis.__hearthTap = tap;
    const connect = chrome.runtime.connect.bind(chrome.runtime);
    chrome.runtime.connect = (...args) => {
      const port = connect(...args);
      const post = port.postMessage.bind(port);
      port.postMessage = (m) => {
        if (m && typeof m.id === 'number' && m.request) tap.calls[m.id] = m.request.type;
        return post(m);
      };
      port.onMessage.addListener((m) => {
        if (m?.kind === 'progress' && typeof m.data?.piece === 'string') (tap.pieces[m.id] ??= []).push(m.data.piece);
        if (m?.kind === 'error') tap.errors.push(`${tap.calls[m.id] ?? m.id}: ${m.error}`);
        if (m?.kind === 'result' && Array.isArray(m.value?.citations)) {
          const given = m.value.sources ?? m.value.sections ?? [];
          tap.results[m.id] = { text: m.value.text, citations: m.value.citations.map((c) => c.n), given: given.map((c) => `${c.n}:${c.source}${c.page ? `#p${c.page}` : ''}`) };
        }
      });
      return port;
    };
  });
  await panel.goto(`chrome-extension://${h.extId}/sidepanel.html`);
});

after(async () => {
  if (timings.length > 0) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    writeFileSync(join(SCREENSHOTS, 'panel-timings.json'), JSON.stringify(timings, null, 2));
    console.log(`# step timings: ${timings.map((t) => `${t.step} ${(t.ms / SECOND).toFixed(1)} s`).join('; ')}`);
  }
  await h?.close();
});

// ---- helpers ----

let shotNo = 0;
async function shot(name) {
  mkdirSync(SCREENSHOTS, { recursive: true });
  const path = join(SCREENSHOTS, `panel-${String(++shotNo).padStart(2, '0')}-${name}.png`);
  await panel.screenshot({ path, fullPage: true }).catch((e) => console.log(`# screenshot ${name} failed: ${e.message}`));
  return path;
}

/** What the panel shows and what the worker logged: attached to every failure. */
async function diagnostics() {
  const ui = await panel
    .evaluate(() => {
      const q = (id) => document.querySelector(`[data-testid="${id}"]`);
      const text = (id) => q(id)?.textContent?.trim().slice(0, 600) ?? null;
      const rows = (id) => [...document.querySelectorAll(`[data-testid="${id}"]`)].map((e) => ({ ...e.dataset, text: e.textContent.trim().slice(0, 300) }));
      return {
        banner: `${q('status-banner')?.dataset.state}: ${text('status-text')}`,
        activeModel: text('active-model'),
        pageStep: text('page-step'),
        pageOutput: text('page-output'),
        progress: rows('library-progress'),
        library: rows('library-row'),
        chat: rows('chat-message'),
        models: rows('model-row'),
        modelsSelect: text('models-select-status'),
        passage: q('passage-view')?.hidden === false ? text('passage-view') : null,
        tap: globalThis.__hearthTap
          ? { calls: globalThis.__hearthTap.calls, errors: globalThis.__hearthTap.errors, results: globalThis.__hearthTap.results, pieces: Object.fromEntries(Object.entries(globalThis.__hearthTap.pieces).map(([k, v]) => [k, `${v.length} pieces: ${JSON.stringify(v.join('').slice(0, 200))}`])) }
          : null,
      };
    })
    .catch((e) => ({ unavailable: String(e) }));
  return `\n--- panel: ${JSON.stringify(ui, null, 1)}\n--- service worker log: ${JSON.stringify(h.swLog, null, 1)}\n--- panel errors: ${JSON.stringify(panelErrors, null, 1)}`;
}

/** Runs one labelled step: times it, screenshots the panel after it, and adds diagnostics to a failure. */
async function step(name, needs, fn) {
  const missing = needs.filter((n) => failed.has(n));
  if (missing.length > 0) {
    failed.add(name);
    throw new Error(`not run: it needs step(s) ${missing.join(', ')}, which failed`);
  }
  const t0 = Date.now();
  try {
    await fn();
  } catch (e) {
    failed.add(name);
    const path = await shot(`${name}-FAILED`);
    e.message = `[step ${name}] ${e.message}\n--- screenshot: ${path}${await diagnostics()}`;
    throw e;
  } finally {
    timings.push({ step: name, ms: Date.now() - t0 });
  }
  await shot(name);
  console.log(`# step ${name}: ${((Date.now() - t0) / SECOND).toFixed(1)} s`);
}

const byTestId = (id) => panel.locator(`[data-testid="${id}"]`);

/** Waits for `fn(arg)` in the panel to be truthy; `what` names it in the timeout error. */
async function until(what, fn, arg, timeout) {
  try {
    await panel.waitForFunction(fn, arg, { timeout, polling: 250 });
  } catch (e) {
    throw new Error(`timed out after ${timeout / SECOND} s waiting for ${what} (${e.message.split('\n')[0]})`);
  }
}

const bannerState = () => byTestId('status-banner').getAttribute('data-state');

/** Waits for the banner to settle on ready/empty (model loads); fails at once on an error state. */
async function untilSettled(timeout) {
  await until(
    'the status banner to reach ready or empty (or an error state)',
    () => ['ready', 'empty', 'no-webgpu', 'gpu-lost', 'oom', 'error'].includes(document.querySelector('[data-testid="status-banner"]')?.dataset.state),
    null,
    timeout,
  );
  const state = await bannerState();
  assert.ok(['ready', 'empty'].includes(state), `banner ${state}: ${await byTestId('status-text').textContent()}`);
  return state;
}

/** Picks `MODEL` as the answering model in the Models tab (if it is not already). */
async function chooseTestModel() {
  await byTestId('tab-models').click();
  await until('the models list', () => document.querySelectorAll('[data-testid="model-row"]').length > 0, null, 2 * MINUTE);
  const ids = await panel.$$eval('[data-testid="model-row"]', (rows) => rows.map((r) => r.dataset.id));
  const tiny = ids.find((id) => id === MODEL);
  assert.ok(tiny, `no ${MODEL} model row among ${JSON.stringify(ids)}`);
  const row = panel.locator(`[data-testid="model-row"][data-id="${tiny}"]`);
  if ((await row.getAttribute('data-active')) !== 'true') {
    await row.locator('[data-testid="model-select"]').click();
  }
  await until(
    `model row ${tiny} to be active`,
    (id) => document.querySelector(`[data-testid="model-row"][data-id="${id}"]`)?.dataset.active === 'true',
    tiny,
    3 * MINUTE,
  );
  return tiny;
}

/** What the worker streamed for, and answered to, the last call of `type` (from the port tap). */
async function lastCall(type) {
  return panel.evaluate((type) => {
    const t = globalThis.__hearthTap;
    const ids = Object.keys(t.calls).filter((id) => t.calls[id] === type);
    const id = ids[ids.length - 1];
    return { pieces: t.pieces[id] ?? [], result: t.results[id] ?? null };
  }, type);
}

/** Texts the model wrote (the streamed pieces) and the panel showed, checked by the words test at the end. */
const written = {};
const shown = {};

/**
 * The panel shows what the model wrote: its words, or for a blank answer the panel's notice
 * (`.empty-answer`, "The model returned no text…") instead of nothing.
 */
async function checkShown(container, streamed, what) {
  const shown = (await container.textContent()).trim();
  const notice = await container.locator('.empty-answer').count();
  if (streamed.trim() === '') {
    assert.equal(notice, 1, `${what}: the model wrote only whitespace and the panel shows ${JSON.stringify(shown.slice(0, 200))}, not the blank-answer notice`);
  } else {
    assert.equal(notice, 0, `${what}: the blank-answer notice for a non-blank answer`);
    const word = streamed.match(/[\p{L}\p{N}]{3,}/u)?.[0];
    assert.ok(shown.length > 0 && (word === undefined || shown.includes(word)), `${what}: the panel shows ${JSON.stringify(shown.slice(0, 200))} for ${JSON.stringify(streamed.slice(0, 200))}`);
  }
}

/** Sends `QUESTION` in the Chat tab (scope library) and returns the new assistant message's locator. */
async function askInChat() {
  await byTestId('tab-chat').click();
  await byTestId('chat-scope').selectOption('library');
  const before = await panel.locator('[data-testid="chat-message"][data-role="assistant"]').count();
  await byTestId('chat-input').fill(QUESTION);
  await byTestId('chat-send').click();
  await until(
    'the assistant message to finish (data-state done or error)',
    (n) => {
      const all = document.querySelectorAll('[data-testid="chat-message"][data-role="assistant"]');
      return all.length > n && ['done', 'error'].includes(all[all.length - 1].dataset.state);
    },
    before,
    10 * MINUTE,
  );
  const message = panel.locator('[data-testid="chat-message"][data-role="assistant"]').last();
  const state = await message.getAttribute('data-state');
  assert.equal(state, 'done', `the assistant message ended in ${state}: ${await message.textContent()}`);
  return message;
}

/** The answer's chips, and the one citing page 2 of varnholm.pdf (opened in the passage viewer). */
async function checkVarnholmCitation(message) {
  const chips = await message
    .locator('[data-testid="citation-chip"]')
    .evaluateAll((els) => els.map((e) => ({ n: e.dataset.n, source: e.dataset.source, page: e.dataset.page, text: e.textContent })));
  console.log(`# answer: ${JSON.stringify((await message.textContent()).slice(0, 300))}; chips: ${JSON.stringify(chips)}`);
  const call = await lastCall('assistant.chat');
  const pieces = call.pieces.join('');
  console.log(
    `# chat: ${call.pieces.length} pieces streamed; the model cited ${JSON.stringify(call.result?.citations)}; sources given ${JSON.stringify(call.result?.given)}` +
      (call.result?.citations.length === 0 ? ' (no citation: the chips show the sources given)' : ''),
  );
  const hit = chips.find((c) => c.source.endsWith('varnholm.pdf') && c.page === '2');
  assert.ok(
    hit,
    `no citation chip for varnholm.pdf page 2 among ${JSON.stringify(chips)}; the model streamed ${JSON.stringify(pieces.slice(0, 200))}`,
  );
  // Only page 2 answers the question: the relevance floor keeps the other pages and the garden notes out.
  const others = chips.filter((c) => c !== hit);
  assert.deepEqual(others, [], 'chips for passages that do not answer the question');
  await message.locator(`[data-testid="citation-chip"][data-n="${hit.n}"]`).click();
  const view = byTestId('passage-view');
  await until('the passage viewer to open', () => document.querySelector('[data-testid="passage-view"]')?.hidden === false, null, 10 * SECOND);
  const text = await view.textContent();
  assert.match(text, /Ingrid/, `the passage viewer shows: ${text}`);
  assert.match(text, /Page 2/, `the passage viewer does not name page 2: ${text}`);
  return text;
}

/** Retrieval on its own (through the worker, no UI): which sources the model is given. */
async function logRetrieval() {
  const answer = await rpc(panel, { type: 'assistant.ask', question: QUESTION, scope: 'library' }, 3 * MINUTE).catch((e) => ({ kind: 'no answer', error: String(e) }));
  if (answer.kind !== 'result') {
    console.log(`# assistant.ask (diagnostic): ${answer.kind}: ${answer.error}`);
    return null;
  }
  const src = answer.value.sources.map((s) => `${s.n}:${s.source}${s.page !== null ? `#p${s.page}` : ''}`);
  console.log(`# assistant.ask (diagnostic): grounded ${answer.value.grounded}, sources ${JSON.stringify(src)}, citations ${JSON.stringify(answer.value.citations.map((c) => c.n))}, text ${JSON.stringify(answer.value.text.slice(0, 120))}`);
  return answer.value;
}

// ---- the shipped manifest stays closed (the loaded test copy only adds the test origin) ----

test('the shipped manifest has no host permissions and the exact CSP; the test copy adds only the test origin', async () => {
  const m = shippedManifest();
  assert.equal(m.host_permissions, undefined, 'dist/manifest.json must not ask for host permissions');
  assert.equal(m.optional_host_permissions, undefined);
  assert.equal(m.web_accessible_resources, undefined);
  assert.equal(m.minimum_chrome_version, '124');
  assert.equal(
    m.content_security_policy?.extension_pages,
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; object-src 'self'; connect-src 'self'; img-src 'self' data: blob:",
  );
  const loaded = await (await h.worker()).evaluate(() => chrome.runtime.getManifest());
  const { host_permissions: hosts, ...rest } = loaded;
  assert.deepEqual(hosts, [`${TEST_ORIGIN}/*`]);
  assert.deepEqual(rest, m, 'the test copy differs from the shipped manifest only by the test host permission');
});

// ---- the flow ----

test('a. the panel opens and the models load (test-words answers)', async () => {
  await step('open', [], async () => {
    await until('the status banner', () => document.querySelector('[data-testid="status-banner"]') !== null, null, 30 * SECOND);
    const state = await untilSettled(5 * MINUTE);
    console.log(`# banner: ${state}: ${await byTestId('status-text').textContent()}`);
  });
  await step('models', ['open'], async () => {
    const id = await chooseTestModel();
    await untilSettled(3 * MINUTE);
    console.log(`# answering model: ${id}; ${await byTestId('active-model').textContent()}`);
  });
});

test('b1. This page: Summarize streams a summary of the article, with chips that highlight its sections', async () => {
  await step('summarize', ['models'], async () => {
    article = await h.ctx.newPage();
    await article.goto(ARTICLE_URL);
    await article.bringToFront();
    const active = await (await h.worker()).evaluate(async () => (await chrome.tabs.query({ active: true, lastFocusedWindow: true })).map((t) => t.url));
    assert.deepEqual(active, [ARTICLE_URL], 'the article must be the active tab of the last focused window');

    await byTestId('tab-page').click();
    // Watch the output while it streams (test instrumentation only).
    await panel.evaluate(() => {
      const out = document.querySelector('[data-testid="page-output"]');
      globalThis.__streaming = { updates: 0, sawStreaming: false };
      new MutationObserver(() => {
        if (out.dataset.state === 'streaming') {
          globalThis.__streaming.sawStreaming = true;
          if (out.textContent.trim() !== '') globalThis.__streaming.updates++;
        }
      }).observe(out, { childList: true, subtree: true, characterData: true, attributes: true });
    });
    await byTestId('page-summarize').click();
    await until(
      'the summary to finish (page-output data-state done or error)',
      () => ['done', 'error'].includes(document.querySelector('[data-testid="page-output"]')?.dataset.state ?? ''),
      null,
      10 * MINUTE,
    );
    const out = byTestId('page-output');
    const text = (await out.textContent()).trim();
    const streaming = await panel.evaluate(() => globalThis.__streaming);
    const call = await lastCall('assistant.summarize');
    written.summary = call.pieces.join('');
    console.log(
      `# summary: ${call.pieces.length} pieces streamed, ${streaming.updates} visible streamed updates; cited ${JSON.stringify(call.result?.citations)}, sections ${JSON.stringify(call.result?.given)}; text ${JSON.stringify(text.slice(0, 300))}`,
    );
    assert.equal(await out.getAttribute('data-state'), 'done', `summarize ended in error: ${text}`);
    assert.ok(streaming.sawStreaming, 'the output never showed data-state=streaming');
    assert.ok(call.pieces.length > 0, 'the worker streamed no pieces for the summary');
    await checkShown(out, written.summary, 'the summary');
    for (const trap of TRAPS) assert.ok(!text.includes(trap), `${trap} shown in the summary`);

    // The chips name the article's passages; one highlights its passage in the tab.
    const chips = byTestId('page-citations').locator('[data-testid="citation-chip"]');
    const sources = await chips.evaluateAll((els) => els.map((e) => ({ n: e.dataset.n, source: e.dataset.source, origin: e.dataset.origin, title: e.title })));
    console.log(`# summary chips: ${JSON.stringify(sources)}`);
    assert.ok(sources.length > 0, 'no chips under the summary');
    for (const c of sources) {
      assert.equal(c.source, ARTICLE_URL);
      for (const trap of TRAPS) assert.ok(!c.title.includes(trap), `${trap} in a chip`);
    }
    await article.bringToFront();
    await chips.first().click();
    await until(
      'the chip to report whether its passage was found on the page',
      () => ['true', 'false'].includes(document.querySelector('[data-testid="page-citations"] [data-testid="citation-chip"]')?.dataset.found ?? ''),
      null,
      MINUTE,
    );
    assert.equal(await chips.first().getAttribute('data-found'), 'true', 'page.highlight did not find the passage in the article');
    const highlighted = await article.evaluate(() => {
      const hl = CSS.highlights.get('hearth');
      return hl ? [...hl].map((r) => r.toString()).join(' ') : null;
    });
    console.log(`# highlighted in the article: ${JSON.stringify(highlighted?.slice(0, 200) ?? null)}`);
    if (highlighted !== null) assert.ok(highlighted.length > 0, 'an empty highlight');
    await article.screenshot({ path: join(SCREENSHOTS, 'panel-article-highlight.png') }).catch(() => {});

    // The panel was a background tab while it streamed (the article was in front), so animation
    // frames were held back: once it is visible again, what it shows must still be the final answer.
    await panel.bringToFront();
    await panel.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
    await checkShown(out, written.summary, 'the summary, once the panel is visible again');
    shown.summary = (await out.textContent()).trim();
  });
});

test('b2. This page: the capture holds the article and none of its hidden text', async () => {
  await step('capture', ['open'], async () => {
    if (article === undefined) {
      article = await h.ctx.newPage();
      await article.goto(ARTICLE_URL);
    }
    await article.bringToFront();
    const answer = await rpc(panel, { type: 'page.capture' }, 2 * MINUTE);
    assert.equal(answer.kind, 'result', `page.capture failed: ${answer.error}`);
    const cap = answer.value;
    console.log(`# capture: ${JSON.stringify({ url: cap.url, title: cap.title, chars: cap.text.length, html: cap.html.length, truncated: cap.truncated })}`);
    assert.equal(cap.url, ARTICLE_URL);
    assert.match(cap.text, /Quillmere Canal/);
    assert.match(cap.text, /Pennock Hill/);
    for (const trap of TRAPS) {
      assert.ok(!cap.text.includes(trap), `${trap} in the captured text`);
      assert.ok(!cap.html.includes(trap), `${trap} in the captured HTML`);
    }
    assert.ok(!/<script/i.test(cap.html), 'a script element in the captured HTML');
  });
});

test('c. Library: a PDF and a Markdown file are parsed, embedded and listed', async () => {
  await step('library-upload', ['open'], async () => {
    await byTestId('tab-library').click();
    await byTestId('library-file-input').setInputFiles([join(DOCS, 'varnholm.pdf'), join(DOCS, 'garden-notes.md')]);
    for (const file of ['varnholm.pdf', 'garden-notes.md']) {
      const t0 = Date.now();
      await until(
        `the progress row of ${file} to reach done (or error)`,
        (f) => ['done', 'error'].includes(document.querySelector(`[data-testid="library-progress"][data-file="${f}"]`)?.dataset.state ?? ''),
        file,
        10 * MINUTE,
      );
      const row = panel.locator(`[data-testid="library-progress"][data-file="${file}"]`);
      assert.equal(await row.getAttribute('data-state'), 'done', `${file}: ${await row.textContent()}`);
      console.log(`# ${file}: ${await row.textContent()} (${((Date.now() - t0) / SECOND).toFixed(1)} s after the previous file)`);
    }
    await until(
      'both documents in the library list',
      () => {
        const s = [...document.querySelectorAll('[data-testid="library-list"] [data-testid="library-row"]')].map((r) => r.dataset.source);
        return s.some((x) => x.endsWith('varnholm.pdf')) && s.some((x) => x.endsWith('garden-notes.md'));
      },
      null,
      30 * SECOND,
    );
    assert.equal(await bannerState(), 'ready', await byTestId('status-text').textContent());
  });
});

test('d. Chat over the library cites page 2 of the PDF, and the passage viewer shows it', async () => {
  await step('chat', ['library-upload', 'models'], async () => {
    const message = await askInChat();
    written.chat = (await lastCall('assistant.chat')).pieces.join('');
    await checkShown(message.locator('.msg-body'), written.chat, 'the chat answer');
    const passage = await checkVarnholmCitation(message).catch(async (e) => {
      await logRetrieval(); // which sources retrieval gave, to tell retrieval from the model's choice
      throw e;
    });
    console.log(`# passage: ${JSON.stringify(passage.slice(0, 200))}`);
    // Still the final answer once the panel (a background tab until now) paints again.
    await panel.bringToFront();
    await panel.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(() => r()))));
    await checkShown(message.locator('.msg-body'), written.chat, 'the chat answer, once the panel is visible again');
    shown.chat = (await message.locator('.msg-body').textContent()).trim();
  });
});

test('e. Deleting a document removes it, also after the panel reloads', async () => {
  await step('delete', ['library-upload'], async () => {
    await byTestId('passage-close').click().catch(() => {});
    await byTestId('tab-library').click();
    await panel.locator('[data-testid="library-row"][data-source$="garden-notes.md"] [data-testid="library-delete"]').click();
    await until(
      'garden-notes.md to leave the list',
      () => ![...document.querySelectorAll('[data-testid="library-row"]')].some((r) => r.dataset.source.endsWith('garden-notes.md')),
      null,
      MINUTE,
    );
    await panel.reload();
    await untilSettled(5 * MINUTE);
    await byTestId('tab-library').click();
    await until(
      'the library list after the reload',
      () => [...document.querySelectorAll('[data-testid="library-row"]')].some((r) => r.dataset.source.endsWith('varnholm.pdf')),
      null,
      MINUTE,
    );
    const sources = await panel.$$eval('[data-testid="library-row"]', (rows) => rows.map((r) => r.dataset.source));
    assert.ok(!sources.some((s) => s.endsWith('garden-notes.md')), `garden-notes.md is back after the reload: ${JSON.stringify(sources)}`);
  });
});

test('f. After the service worker stops, the library comes back from OPFS and answers again', async () => {
  await step('restart', ['library-upload'], async () => {
    const t0 = Date.now();
    await h.stopServiceWorker(panel);
    console.log(`# service worker stopped in ${Date.now() - t0} ms`);
    await panel.reload();
    await untilSettled(5 * MINUTE);
    await byTestId('tab-library').click();
    await until(
      'the library list after the restart',
      () => [...document.querySelectorAll('[data-testid="library-row"]')].some((r) => r.dataset.source.endsWith('varnholm.pdf')),
      null,
      2 * MINUTE,
    );
    const sources = await panel.$$eval('[data-testid="library-row"]', (rows) => rows.map((r) => r.dataset.source));
    assert.deepEqual(sources.map((s) => s.split('/').pop()), ['varnholm.pdf'], 'the library after the restart');
    await byTestId('tab-models').click();
    await until('the models list', () => document.querySelectorAll('[data-testid="model-row"]').length > 0, null, 2 * MINUTE);
    const active = await panel.$$eval('[data-testid="model-row"][data-active="true"]', (rows) => rows.map((r) => r.dataset.id));
    console.log(`# active models after the restart: ${JSON.stringify(active)}`);
    assert.ok(active.includes(MODEL), `the answering model chosen before the restart was forgotten: active ${JSON.stringify(active)}`);
  });
  await step('restart-chat', ['restart', 'models'], async () => {
    const message = await askInChat();
    written.restartChat = (await lastCall('assistant.chat')).pieces.join('');
    await checkShown(message.locator('.msg-body'), written.restartChat, 'the chat answer after the restart');
    shown.restartChat = (await message.locator('.msg-body').textContent()).trim();
    await checkVarnholmCitation(message);
  });
});

// test-words writes WORDS for every prompt: the worker streamed exactly it (its [1] is a citation
// the model wrote, so no source was asked for afterwards), and the panel rendered it as text.
test('the model wrote words and the panel shows them (summary, chat answers)', () => {
  for (const what of ['summary', 'chat', 'restartChat']) {
    assert.equal(written[what], WORDS, `what the worker streamed for the ${what}`);
    assert.ok(shown[what]?.includes(WORDS), `the panel shows ${JSON.stringify(shown[what]?.slice(0, 200))} for the ${what}, not ${JSON.stringify(WORDS)}`);
  }
});

test('g. no request left the extension (but the test page), and no unexpected errors', async () => {
  const seen = h.requests.length;
  assert.ok(seen > 0, 'the recorders saw nothing at all');
  assert.ok(h.requests.some((r) => r.source === 'sw-cdp'), 'CDP saw no service worker request');
  const summary = {};
  for (const r of h.requests) {
    const key = `${r.source} ${new URL(r.url).protocol}`;
    summary[key] = (summary[key] ?? 0) + 1;
  }
  console.log(`# ${seen} requests recorded: ${JSON.stringify(summary)}`);
  assert.deepEqual(h.forbidden(), []);
  const unexpected = h.swLog.filter((line) => !EXPECTED_SW_ERRORS.some((re) => re.test(line)));
  assert.deepEqual(unexpected, [], 'service worker errors');
  assert.deepEqual(panelErrors, [], 'side panel errors');
});
