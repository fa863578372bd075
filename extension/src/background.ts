// The service worker: owns the engine (wasm + WebGPU) and answers the extension's pages.
//
// Module worker with static imports only (`import()` is not allowed in service workers). Listeners
// are registered synchronously at top level so that Chrome can wake the worker for any of them.

import {
  RPC_PORT,
  isContentMessage,
  isToWorker,
  type FromWorker,
  type HearthEvent,
  type PageCapture,
  type Progresses,
  type RequestOf,
  type RequestType,
  type Responses,
} from './messages.js';
import * as engine from './wasm.js';

// ---- Request handlers: one per request type (the mapped type makes a missing one a compile error) ----

interface HandlerContext<T extends RequestType> {
  /** Reports progress to the caller (e.g. tokens as they are generated). */
  progress: (data: Progresses[T]) => void;
  /** Aborted when the caller cancels or its page goes away. */
  signal: AbortSignal;
}

type Handlers = {
  [T in RequestType]: (req: RequestOf<T>, ctx: HandlerContext<T>) => Promise<Responses[T]>;
};

const LAST_CAPTURE_KEY = 'lastCapture';

const handlers: Handlers = {
  'gpu.info': () => engine.gpuInfo(),
  'gpu.selfTest': () => engine.selfTest(),
  'model.generate': (req, ctx) => engine.generate(req, (piece) => ctx.progress({ piece }), ctx.signal),
  'page.lastCapture': async () => {
    const got = await chrome.storage.session.get(LAST_CAPTURE_KEY);
    return (got[LAST_CAPTURE_KEY] as PageCapture | undefined) ?? null;
  },
};

function dispatch<T extends RequestType>(req: RequestOf<T>, ctx: HandlerContext<T>): Promise<Responses[T]> {
  // `handlers[req.type]` has the handler type for T; TypeScript cannot see through the indexed access.
  const h = handlers[req.type] as (r: RequestOf<T>, c: HandlerContext<T>) => Promise<Responses[T]>;
  return h(req, ctx);
}

// ---- The port pages connect to ----

const ports = new Set<chrome.runtime.Port>();

/** Only this extension's own pages may call the worker (content scripts run inside web pages). */
function fromOurPage(port: chrome.runtime.Port): boolean {
  const url = port.sender?.url ?? '';
  return port.sender?.id === chrome.runtime.id && url.startsWith(chrome.runtime.getURL(''));
}

function post(port: chrome.runtime.Port, msg: FromWorker): void {
  try {
    port.postMessage(msg);
  } catch {
    // The page went away; its pending calls are cancelled by onDisconnect.
  }
}

function broadcast(event: HearthEvent): void {
  for (const port of ports) post(port, { kind: 'event', event });
}

chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== RPC_PORT || !fromOurPage(port)) {
    port.disconnect();
    return;
  }
  ports.add(port);
  const running = new Map<number, AbortController>();
  port.onDisconnect.addListener(() => {
    ports.delete(port);
    for (const c of running.values()) c.abort();
    running.clear();
  });
  port.onMessage.addListener((msg: unknown) => {
    if (!isToWorker(msg)) {
      console.warn('hearth: ignoring malformed message', msg);
      return;
    }
    if ('cancel' in msg) {
      running.get(msg.id)?.abort();
      return;
    }
    const { id, request } = msg;
    const controller = new AbortController();
    running.set(id, controller);
    const ctx = {
      signal: controller.signal,
      progress: (data: unknown) => post(port, { id, kind: 'progress', data }),
    };
    dispatch(request, ctx)
      .then((value) => post(port, { id, kind: 'result', value }))
      .catch((e: unknown) => {
        console.error(`hearth: ${request.type} failed`, e);
        post(port, { id, kind: 'error', error: e instanceof Error ? e.message : String(e) });
      })
      .finally(() => running.delete(id));
  });
});

// ---- Page capture: context menu → content script → worker ----

const MENU_ID = 'hearth-capture';

chrome.runtime.onInstalled.addListener(() => {
  chrome.contextMenus.create({
    id: MENU_ID,
    title: 'Send to Hearth',
    contexts: ['page', 'selection'],
  });
  // The toolbar button opens the side panel.
  chrome.sidePanel.setPanelBehavior({ openPanelOnActionClick: true }).catch((e: unknown) => {
    console.warn('hearth: setPanelBehavior failed', e);
  });
});

chrome.contextMenus.onClicked.addListener((info, tab) => {
  if (info.menuItemId !== MENU_ID || tab?.id === undefined) return;
  const tabId = tab.id;
  // open() needs the user gesture, which the first `await` would lose: call it first.
  chrome.sidePanel.open({ tabId }).catch((e: unknown) => console.warn('hearth: sidePanel.open failed', e));
  // activeTab grants this tab to us for this click; content.js sends back a `page.captured`.
  chrome.scripting
    .executeScript({ target: { tabId }, files: ['content.js'] })
    .catch((e: unknown) => console.warn('hearth: cannot read this page', e));
});

chrome.runtime.onMessage.addListener((msg: unknown, sender) => {
  // Only our own content script, running in a tab, sends one-shot messages.
  if (sender.id !== chrome.runtime.id || sender.tab === undefined || !isContentMessage(msg)) return;
  const capture = msg.capture;
  chrome.storage.session
    .set({ [LAST_CAPTURE_KEY]: capture })
    .then(() => broadcast({ type: 'page.captured', capture }))
    .catch((e: unknown) => console.error('hearth: storing the capture failed', e));
});
