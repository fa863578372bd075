// The extension in real Chromium on WebGPU (SwiftShader here): the service worker finds an adapter,
// the Rust engine's GPU self-test passes against its CPU reference, the side panel opens, and
// nothing touches the network.
//
// Run: `make extension && node --test tests/browser/` (or `make test`).

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { SCREENSHOTS, isAllowedUrl, launch, rpc } from './harness.mjs';

let h; // the launched browser (harness.launch)
let page; // the side panel page, opened as a tab
const pageErrors = [];

before(async () => {
  h = await launch();
  console.log(`# extension ${h.extId}; network namespace isolation: ${h.isolated ? 'on' : 'OFF (unshare unavailable)'}`);
  page = await h.ctx.newPage();
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error') pageErrors.push(`console.error: ${m.text()}`);
  });
  await page.goto(`chrome-extension://${h.extId}/sidepanel.html`);
});

after(async () => {
  await h?.close();
});

test('the service worker sees a WebGPU adapter', async () => {
  const adapter = await h.sw.evaluate(async () => {
    if (!('gpu' in navigator)) return null;
    const a = await navigator.gpu.requestAdapter();
    return a && { vendor: a.info.vendor, architecture: a.info.architecture, f16: a.features.has('shader-f16') };
  });
  assert.ok(adapter, 'navigator.gpu.requestAdapter() returned null in the service worker');
  console.log(`# adapter: ${JSON.stringify(adapter)}`);
});

test('gpu.info from the Rust engine reports an adapter', async () => {
  const answer = await rpc(page, { type: 'gpu.info' });
  assert.equal(answer.kind, 'result', `gpu.info failed: ${answer.error}`);
  const info = answer.value;
  console.log(`# gpu.info: ${JSON.stringify(info)}`);
  assert.equal(typeof info.adapter, 'string');
  assert.match(info.backend, /BrowserWebGpu/i);
  for (const k of ['f16', 'subgroups', 'timestamps']) assert.equal(typeof info.features[k], 'boolean', k);
  assert.ok(info.max_binding > 0 && info.max_binding <= info.max_buffer_size, 'binding limit');
  assert.ok(info.max_invocations_per_workgroup >= 256);
  // The engine must report what the browser really grants: compare with the adapter seen directly.
  const direct = await h.sw.evaluate(async () => {
    const a = await navigator.gpu.requestAdapter();
    return { f16: a.features.has('shader-f16'), vendor: a.info.vendor, architecture: a.info.architecture };
  });
  assert.equal(info.features.f16, direct.f16, 'engine and browser disagree on shader-f16');
  assert.equal(info.browser_adapter?.vendor, direct.vendor);
  assert.equal(info.browser_adapter?.architecture, direct.architecture);
  assert.ok(info.adapter || info.browser_adapter.vendor || info.browser_adapter.architecture, 'no adapter name at all');
});

test('the engine self-test passes on WebGPU (GPU result vs CPU reference)', async () => {
  const answer = await rpc(page, { type: 'gpu.selfTest' });
  assert.equal(answer.kind, 'result', `gpu.selfTest failed: ${answer.error}`);
  const r = answer.value;
  console.log(`# gpu.selfTest: ${JSON.stringify(r)}`);
  assert.equal(r.kernel, 'elementwise.add');
  assert.ok(r.n > 100_000, 'the test covers more than one dispatch row of workgroups');
  assert.equal(r.first_bad, null);
  assert.ok(r.max_abs_err <= 1e-6, `max error ${r.max_abs_err}`);
  assert.equal(r.passed, true);
});

test('a malformed request gets no answer and does not crash the worker', async () => {
  const answered = await page.evaluate(
    () =>
      new Promise((resolve) => {
        const port = chrome.runtime.connect({ name: 'hearth-rpc' });
        // Status events are broadcast to every port; only a reply to this call counts.
        port.onMessage.addListener((msg) => {
          if (msg && msg.id === 7) resolve(true);
        });
        port.postMessage({ id: 7, request: { type: 'no.such.thing' } });
        setTimeout(() => resolve(false), 500);
      }),
  );
  assert.equal(answered, false);
  const again = await rpc(page, { type: 'page.lastCapture' });
  assert.deepEqual(again, { id: 1, kind: 'result', value: null });
});

test('the side panel opens on its four tabs with a status banner', async () => {
  await page.locator('[data-testid=status-banner]').waitFor({ state: 'attached', timeout: 30_000 });
  for (const tab of ['tab-library', 'tab-chat', 'tab-models', 'tab-page']) {
    await page.click(`[data-testid=${tab}]`);
    assert.equal(await page.getAttribute(`[data-testid=${tab}]`, 'aria-selected'), 'true', tab);
    assert.equal(await page.getAttribute(`[data-testid=${tab}]`, 'role'), 'tab', tab);
  }
  mkdirSync(SCREENSHOTS, { recursive: true });
  const shot = join(SCREENSHOTS, 'sidepanel.png');
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`# screenshot: ${shot}`);
});

test('no errors in the side panel or the service worker', () => {
  assert.deepEqual(pageErrors, []);
  assert.deepEqual(h.swLog, []);
});

test('the manifest keeps the extension closed', async () => {
  const m = await h.sw.evaluate(() => chrome.runtime.getManifest());
  assert.equal(m.manifest_version, 3);
  assert.equal(m.minimum_chrome_version, '124');
  assert.deepEqual([...m.permissions].sort(),
    ['activeTab', 'contextMenus', 'scripting', 'sidePanel', 'storage', 'unlimitedStorage']);
  assert.equal(m.host_permissions, undefined);
  assert.equal(m.optional_permissions, undefined);
  assert.equal(m.optional_host_permissions, undefined);
  assert.equal(m.content_scripts, undefined);
  assert.equal(m.web_accessible_resources, undefined);
  assert.deepEqual(m.externally_connectable?.ids, []);
  assert.deepEqual(m.externally_connectable?.matches ?? [], []);
  assert.equal(m.background.type, 'module');
  assert.equal(m.side_panel.default_path, 'sidepanel.html');
  const csp = m.content_security_policy.extension_pages;
  assert.match(csp, /connect-src 'self'(;|$)/);
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'(;|$)/);
  assert.match(csp, /default-src 'self'(;|$)/);
});

test('no request left the extension', () => {
  const seen = h.requests.length;
  assert.ok(seen > 0, 'the recorders saw nothing at all: they are not working');
  assert.deepEqual(h.forbidden(), []);
  console.log(`# ${seen} requests recorded, all chrome-extension:/data:/blob:: ${JSON.stringify(h.requests)}`);
});

test('the CSP blocks fetches to the web from the worker and the panel', async () => {
  const swError = await h.sw.evaluate(() => fetch('http://hearth-canary.invalid/sw').then(() => null, (e) => String(e)));
  const pageError = await page.evaluate(() => fetch('http://hearth-canary.invalid/page').then(() => null, (e) => String(e)));
  assert.ok(swError, 'the service worker could fetch a web URL');
  assert.ok(pageError, 'the side panel could fetch a web URL');
  assert.deepEqual(h.forbidden(), [], 'a blocked fetch still reached the network stack');
});

// Last: it deliberately makes a forbidden request, proving the recorders would catch one.
test('the recorders see the service worker\'s fetches and a page navigating to the web', async () => {
  const sw = h.requests.filter((r) => r.url.endsWith('/hearth_wasm_bg.wasm')).map((r) => r.source);
  console.log(`# wasm fetch seen by: ${sw.join(', ')}`);
  assert.ok(sw.includes('sw-cdp'), 'CDP did not see the service worker fetch the wasm');
  const before = h.requests.length;
  const canary = await h.ctx.newPage();
  await canary.goto('http://hearth-canary.invalid/page').catch(() => {});
  await canary.close();
  const caught = h.requests.slice(before).filter((r) => !isAllowedUrl(r.url));
  assert.ok(caught.some((r) => r.url.startsWith('http://hearth-canary.invalid/')), 'the navigation went unseen');
});

// Also last: proves the error recorders of the "no errors" test would see an error.
test('the error recorders see console errors in the service worker and the panel', async () => {
  await h.sw.evaluate(() => console.error('hearth-canary-sw'));
  await page.evaluate(() => console.error('hearth-canary-page'));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(h.swLog.some((l) => l.includes('hearth-canary-sw')), `service worker log: ${JSON.stringify(h.swLog)}`);
  assert.ok(pageErrors.some((l) => l.includes('hearth-canary-page')), `page log: ${JSON.stringify(pageErrors)}`);
});
