// Launches Debian's Chromium with the unpacked extension (extension/dist) through playwright-core,
// the way /work/shared/notes/browser-testing.md prescribes, and records every network request made
// by pages and by the extension's service worker.
//
// Isolation, strongest first:
//  1. Chromium runs in a fresh network namespace holding only loopback (`unshare -n`), so nothing
//     can leave the machine even if our recording missed it. Playwright talks to it over a pipe.
//  2. `--host-resolver-rules` maps every name to NOTFOUND (Chromium's own background lookups).
//  3. Every request seen (context `request` events + CDP Network on every service-worker target of
//     the extension, re-attached when the worker restarts) is recorded; tests fail on any URL
//     outside chrome-extension:, data: and blob:.
//
// One narrow exception, only when a test asks for it (`launch({ testOrigin: true })`): the local
// test page origin http://hearth.test. Nothing on it is ever fetched from a network: the test
// fulfils each URL itself (`serve()`, through Playwright's `context.route`), and only URLs the test
// actually fulfilled are allowed; any other request to that origin is aborted and stays forbidden.

import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(new URL('../../extension/package.json', import.meta.url));
const { chromium } = require('playwright-core');

export const REPO = fileURLToPath(new URL('../..', import.meta.url));
/** The unpacked extension (`HEARTH_EXTENSION_DIR` overrides, e.g. to test a modified copy). */
export const EXTENSION = process.env.HEARTH_EXTENSION_DIR ?? join(REPO, 'extension', 'dist');
export const SCREENSHOTS = fileURLToPath(new URL('./screenshots', import.meta.url));
const CHROMIUM = process.env.HEARTH_CHROMIUM ?? '/usr/bin/chromium';

const ALLOWED_SCHEMES = ['chrome-extension:', 'data:', 'blob:'];

/** The local test page origin (see the header): served by the test itself, never by a network. */
export const TEST_ORIGIN = 'http://hearth.test';

export function isAllowedUrl(url) {
  try {
    return ALLOWED_SCHEMES.includes(new URL(url).protocol);
  } catch {
    return false;
  }
}

/** Whether `unshare -n` works here (root, or user namespaces allowed). */
function canUnshareNetwork() {
  try {
    execFileSync('unshare', ['-n', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** An executable that starts Chromium inside a loopback-only network namespace. */
function netnsWrapper(dir) {
  const path = join(dir, 'chromium-netns.sh');
  writeFileSync(
    path,
    `#!/bin/sh\nexec unshare -n sh -c 'ip link set lo up 2>/dev/null || true; exec "$0" "$@"' ${JSON.stringify(CHROMIUM)} "$@"\n`,
  );
  chmodSync(path, 0o755);
  return path;
}

/** Copies a directory tree, hard-linking files where possible (the models are ~100 MB). */
function linkTree(from, to) {
  mkdirSync(to, { recursive: true });
  for (const e of readdirSync(from, { withFileTypes: true })) {
    const [src, dst] = [join(from, e.name), join(to, e.name)];
    if (e.isDirectory()) linkTree(src, dst);
    else {
      try {
        linkSync(src, dst);
      } catch {
        copyFileSync(src, dst);
      }
    }
  }
}

/**
 * A TEST-ONLY copy of the extension whose manifest also grants `host_permissions` for the test
 * origin alone. Why: the shipped extension reads a tab only through `activeTab`, which Chrome grants
 * on a user gesture (toolbar click, context menu) that a headless test cannot make. Granting
 * exactly http://hearth.test/* stands in for that gesture on the test page and nothing else. The
 * shipped dist/manifest.json keeps no host permissions (tests/browser/panel.test.mjs asserts it).
 */
function testCopy(dir, { testOrigin }) {
  linkTree(EXTENSION, dir);
  if (testOrigin) {
    const manifestPath = join(dir, 'manifest.json');
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'));
    rmSync(manifestPath); // a hard link to the shipped manifest: never write through it
    manifest.host_permissions = [`${TEST_ORIGIN}/*`];
    writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  }
  return dir;
}

/** For `launch({ prepare })`: replaces one file of a test copy (its files are hard links to dist/). */
export function replaceInCopy(dir, path, contents) {
  const target = join(dir, path);
  rmSync(target, { force: true });
  writeFileSync(target, contents);
}

/** The shipped manifest (extension/dist or HEARTH_EXTENSION_DIR), not a test copy's. */
export function shippedManifest() {
  return JSON.parse(readFileSync(join(EXTENSION, 'manifest.json'), 'utf8'));
}

/**
 * Starts Chromium with the extension. Returns { ctx, sw, extId, requests, swLog, isolated, close, … }.
 * `requests` collects { url, source } from every recorder; `swLog` the service worker's console
 * errors and uncaught exceptions (seen through CDP, across worker restarts).
 *
 * `testOrigin: true` loads a test copy of the extension allowed to script http://hearth.test/* (see
 * `testCopy`) and enables `serve()`. `prepare(dir)` gets a test copy to change first (e.g. with
 * `replaceInCopy`).
 */
export async function launch({ headless = true, testOrigin = false, prepare = null } = {}) {
  if (!existsSync(join(EXTENSION, 'manifest.json'))) {
    throw new Error('extension/dist is not built: run `make extension` first');
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run \`make deps\``);
  const tmp = mkdtempSync(join(tmpdir(), 'hearth-browser-'));
  const profile = join(tmp, 'profile');
  const copy = testOrigin || prepare !== null;
  const extension = copy ? testCopy(join(tmp, 'extension'), { testOrigin }) : EXTENSION;
  if (prepare !== null) prepare(extension);
  const isolated = process.env.HEARTH_NO_NETNS !== '1' && canUnshareNetwork();
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: isolated ? netnsWrapper(tmp) : CHROMIUM,
    headless,
    viewport: { width: 420, height: 720 },
    args: [
      '--no-sandbox',
      '--disable-gpu-sandbox',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--enable-unsafe-webgpu',
      '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1',
      `--disable-extensions-except=${extension}`,
      `--load-extension=${extension}`,
    ],
  });

  const requests = [];
  ctx.on('request', (r) => requests.push({ url: r.url(), source: r.serviceWorker() ? 'sw-event' : 'page-event' }));

  const sw =
    ctx.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://')) ??
    (await ctx.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith('chrome-extension://') }));
  const extId = new URL(sw.url()).host;

  const swLog = [];
  const watcher = await watchServiceWorkers(ctx, `chrome-extension://${extId}/`, requests, swLog);

  /** URLs of the test origin that the test fulfilled itself (`serve`). */
  const served = new Set();
  const allowed = (url) => isAllowedUrl(url) || (served.has(url) && new URL(url).origin === TEST_ORIGIN);

  return {
    ctx,
    sw,
    extId,
    requests,
    swLog,
    isolated,
    extensionDir: extension,
    /** Requests outside the allowed schemes (and not a test-origin URL the test fulfilled). */
    forbidden: () => requests.filter((r) => !allowed(r.url)),
    /** The extension's live service worker (a new one after `stopServiceWorker`). */
    async worker(timeout = 30_000) {
      const live = ctx.serviceWorkers().filter((w) => w.url().startsWith(`chrome-extension://${extId}/`));
      if (live.length > 0) return live[live.length - 1];
      return ctx.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith(`chrome-extension://${extId}/`), timeout });
    },
    /**
     * Serves `pages` ({ '/path': { body, contentType } }) at TEST_ORIGIN from inside the test:
     * nothing goes to a network. Any other URL of the origin is aborted (and stays forbidden).
     */
    async serve(pages) {
      if (!testOrigin) throw new Error('serve() needs launch({ testOrigin: true })');
      await ctx.route(`${TEST_ORIGIN}/**`, async (route) => {
        const url = route.request().url();
        const page = pages[new URL(url).pathname];
        if (page === undefined) return route.abort('blockedbyclient');
        served.add(url);
        return route.fulfill({ status: 200, contentType: page.contentType ?? 'text/html; charset=utf-8', body: page.body });
      });
    },
    /**
     * Stops the extension's service worker the way Chrome does when it is idle
     * (`ServiceWorker.stopAllWorkers` through `page`, an extension page); returns once the worker's
     * running status is `stopped`. The next message from a page starts it again.
     */
    async stopServiceWorker(page, timeout = 15_000) {
      const session = await ctx.newCDPSession(page);
      try {
        const prefix = `chrome-extension://${extId}/`;
        let status = null;
        session.on('ServiceWorker.workerVersionUpdated', (e) => {
          const v = e.versions.filter((x) => x.scriptURL.startsWith(prefix));
          if (v.length > 0) status = v.every((x) => x.runningStatus === 'stopped') ? 'stopped' : v.map((x) => x.runningStatus).join(',');
        });
        await session.send('ServiceWorker.enable');
        await session.send('ServiceWorker.stopAllWorkers');
        const deadline = Date.now() + timeout;
        while (status !== 'stopped' && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        if (status !== 'stopped') throw new Error(`the service worker did not stop (running status: ${status})`);
      } finally {
        await session.detach().catch(() => {});
      }
    },
    async close() {
      await watcher.detach().catch(() => {});
      await ctx.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * A browser-level CDP session that attaches to every service-worker target under `prefix` (now and
 * whenever the worker restarts; non-flat mode: messages are relayed through
 * Target.sendMessageToTarget) and enables Network and Runtime there.
 */
async function watchServiceWorkers(ctx, prefix, requests, swLog) {
  const browser = ctx.browser();
  if (browser === null) throw new Error('no browser handle for CDP');
  const cdp = await browser.newBrowserCDPSession();
  const sessions = new Map(); // sessionId → targetId
  const attached = new Set(); // targetIds
  let nextId = 1;
  const send = (sessionId, method, params = {}) =>
    cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: nextId++, method, params }) });
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    if (!sessions.has(e.sessionId)) return;
    const msg = JSON.parse(e.message);
    switch (msg.method) {
      case 'Network.requestWillBeSent':
        requests.push({ url: msg.params.request.url, source: 'sw-cdp' });
        break;
      case 'Runtime.exceptionThrown':
        swLog.push(`exception: ${msg.params.exceptionDetails?.exception?.description ?? msg.params.exceptionDetails?.text}`);
        break;
      case 'Runtime.consoleAPICalled':
        if (msg.params.type === 'error' || msg.params.type === 'assert') {
          swLog.push(`console.${msg.params.type}: ${msg.params.args.map((a) => a.value ?? a.description ?? '').join(' ')}`);
        }
        break;
    }
  });
  const attach = async (t) => {
    if (t.type !== 'service_worker' || !t.url.startsWith(prefix) || attached.has(t.targetId)) return;
    attached.add(t.targetId);
    const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: t.targetId, flatten: false });
    sessions.set(sessionId, t.targetId);
    await send(sessionId, 'Network.enable');
    await send(sessionId, 'Runtime.enable');
  };
  cdp.on('Target.targetCreated', (e) => attach(e.targetInfo).catch((err) => swLog.push(`harness: attach failed: ${err}`)));
  cdp.on('Target.targetInfoChanged', (e) => attach(e.targetInfo).catch(() => {}));
  cdp.on('Target.detachedFromTarget', (e) => {
    // A restarted worker may come back under the same target id: attach again then.
    attached.delete(sessions.get(e.sessionId));
    sessions.delete(e.sessionId);
  });
  await cdp.send('Target.setDiscoverTargets', { discover: true });
  const { targetInfos } = await cdp.send('Target.getTargets');
  if (!targetInfos.some((t) => t.type === 'service_worker' && t.url.startsWith(prefix))) {
    throw new Error(`no service worker target under ${prefix}`);
  }
  for (const t of targetInfos) await attach(t);

  return { detach: () => cdp.detach() };
}

/**
 * From an extension page: one RPC call to the service worker over a fresh port, returning the raw
 * wire answer ({ kind: 'result', value } or { kind: 'error', error }).
 */
export async function rpc(page, request, timeoutMs = 60_000) {
  return page.evaluate(
    ([request, timeoutMs]) =>
      new Promise((resolve, reject) => {
        const port = chrome.runtime.connect({ name: 'hearth-rpc' });
        const timer = setTimeout(() => reject(new Error(`no answer to ${request.type}`)), timeoutMs);
        port.onMessage.addListener((m) => {
          if (m.id !== 1 || m.kind === 'progress') return;
          clearTimeout(timer);
          port.disconnect();
          resolve(m);
        });
        port.postMessage({ id: 1, request });
      }),
    [request, timeoutMs],
  );
}
