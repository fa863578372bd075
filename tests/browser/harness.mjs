// Launches Debian's Chromium with the unpacked extension (extension/dist) through playwright-core,
// the way /work/shared/notes/browser-testing.md prescribes, and records every network request made
// by pages and by the extension's service worker.
//
// Isolation, strongest first:
//  1. Chromium runs in a fresh network namespace holding only loopback (`unshare -n`), so nothing
//     can leave the machine even if our recording missed it. Playwright talks to it over a pipe.
//  2. `--host-resolver-rules` maps every name to NOTFOUND (Chromium's own background lookups).
//  3. Every request seen (context `request` events + CDP Network on the service-worker target)
//     is recorded; tests fail on any URL outside chrome-extension:, data: and blob:.

import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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

/**
 * Starts Chromium with the extension. Returns { ctx, sw, extId, requests, swLog, isolated, close }.
 * `requests` collects { url, source } from every recorder; `swLog` the service worker's console
 * errors and uncaught exceptions (seen through CDP).
 */
export async function launch({ headless = true } = {}) {
  if (!existsSync(join(EXTENSION, 'manifest.json'))) {
    throw new Error('extension/dist is not built: run `make extension` first');
  }
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: run \`make deps\``);
  const tmp = mkdtempSync(join(tmpdir(), 'hearth-browser-'));
  const profile = join(tmp, 'profile');
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
      `--disable-extensions-except=${EXTENSION}`,
      `--load-extension=${EXTENSION}`,
    ],
  });

  const requests = [];
  ctx.on('request', (r) => requests.push({ url: r.url(), source: r.serviceWorker() ? 'sw-event' : 'page-event' }));

  const sw =
    ctx.serviceWorkers().find((w) => w.url().startsWith('chrome-extension://')) ??
    (await ctx.waitForEvent('serviceworker', { predicate: (w) => w.url().startsWith('chrome-extension://') }));
  const extId = new URL(sw.url()).host;

  const swLog = [];
  const cdp = await watchServiceWorker(ctx, sw.url(), requests, swLog);

  return {
    ctx,
    sw,
    extId,
    requests,
    swLog,
    isolated,
    /** Requests outside the allowed schemes. */
    forbidden: () => requests.filter((r) => !isAllowedUrl(r.url)),
    async close() {
      await cdp.detach().catch(() => {});
      await ctx.close();
      rmSync(tmp, { recursive: true, force: true });
    },
  };
}

/**
 * Attaches a browser-level CDP session to the service worker (non-flat mode: messages are relayed
 * through Target.sendMessageToTarget) and enables Network and Runtime there.
 */
async function watchServiceWorker(ctx, swUrl, requests, swLog) {
  const browser = ctx.browser();
  if (browser === null) throw new Error('no browser handle for CDP');
  const cdp = await browser.newBrowserCDPSession();
  const { targetInfos } = await cdp.send('Target.getTargets');
  const target = targetInfos.find((t) => t.type === 'service_worker' && t.url === swUrl);
  if (target === undefined) throw new Error(`service worker target ${swUrl} not found`);
  const { sessionId } = await cdp.send('Target.attachToTarget', { targetId: target.targetId, flatten: false });
  let nextId = 1;
  const send = (method, params = {}) =>
    cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id: nextId++, method, params }) });
  cdp.on('Target.receivedMessageFromTarget', (e) => {
    if (e.sessionId !== sessionId) return;
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
  await send('Network.enable');
  await send('Runtime.enable');
  return cdp;
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
