// The service worker: owns the engine (wasm + WebGPU) and answers the extension's pages.
//
// Module worker with static imports only (`import()` is not allowed in service workers). Listeners
// are registered synchronously at top level so that Chrome can wake the worker for any of them.
// The worker stays alive while a page waits on it (the page's heartbeat over the port) and is
// otherwise left to Chrome to stop; everything it needs comes back from the package and OPFS.

import * as engine from './engine.js';
import {
  RPC_PORT,
  isContentMessage,
  isPageCapture,
  isToWorker,
  type AnswerView,
  type FromWorker,
  type HearthEvent,
  type PageCapture,
  type Progresses,
  type RequestOf,
  type RequestType,
  type Responses,
  type SummaryView,
  type TaskProgress,
  type UpsertReport,
} from './messages.js';
import * as wasm from './wasm.js';

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

/** A progress callback for the engine: forwards, and says stop once the caller has gone. */
function forward<T extends RequestType>(ctx: HandlerContext<T>): (p: TaskProgress) => boolean {
  return (p) => {
    (ctx.progress as (d: TaskProgress) => void)(p);
    return !ctx.signal.aborted;
  };
}

/** The tab the user is looking at (the side panel's window). */
async function activeTab(): Promise<chrome.tabs.Tab & { id: number }> {
  const [tab] = await chrome.tabs.query({ active: true, lastFocusedWindow: true });
  if (tab?.id === undefined) throw new Error('there is no open tab to read');
  return tab as chrome.tabs.Tab & { id: number };
}

/** What `content.js` defines in the tab's isolated world. */
interface PageApi {
  capture(): unknown;
  highlight(quote: string): boolean;
}

/** Injects `content.js` into `tabId` (again each time: a reloaded page has lost it, and defining
 *  it twice is harmless), then runs `capture()` or `highlight(quote)` there. */
async function inPage(tabId: number, quote?: string): Promise<unknown> {
  await chrome.scripting.executeScript({ target: { tabId }, files: ['content.js'] });
  const [res] = await chrome.scripting.executeScript({
    target: { tabId },
    // Serialised into the page: it may use only its arguments.
    func: (q: string | null) => {
      const api = (globalThis as unknown as { __hearth: PageApi }).__hearth;
      return q === null ? api.capture() : api.highlight(q);
    },
    args: [quote ?? null],
  });
  return res?.result;
}

/** The main content of the page in `tabId`. */
async function capturePage(tabId: number): Promise<PageCapture> {
  try {
    const capture = await inPage(tabId);
    if (!isPageCapture(capture)) throw new Error('the page gave no text');
    return capture;
  } catch (e) {
    throw new Error(
      `Hearth cannot read this page (${e instanceof Error ? e.message : String(e)}). Browser pages, the Web Store and ` +
        'PDF viewers are off limits; on other pages open Hearth from its toolbar button or shortcut first.',
    );
  }
}

const handlers: Handlers = {
  'gpu.info': () => wasm.gpuInfo(),
  'gpu.selfTest': () => wasm.selfTest(),
  'model.bench': (req) => wasm.bench(req),
  'model.generate': (req, ctx) => wasm.generate(req, (piece) => ctx.progress({ piece }), ctx.signal),
  'page.lastCapture': async () => {
    const got = await chrome.storage.session.get(LAST_CAPTURE_KEY);
    return (got[LAST_CAPTURE_KEY] as PageCapture | undefined) ?? null;
  },
  status: async () => {
    engine.warmUp();
    return engine.currentStatus();
  },
  'page.capture': async () => capturePage((await activeTab()).id),
  'page.index': (req, ctx) =>
    engine.task(async (h) => {
      const chunks = await wasm.call<number>('indexPage', () => h.indexPage(req.parsed, forward(ctx)));
      engine.refreshCounts(h);
      return { url: req.parsed.doc.source, chunks };
    }),
  'page.highlight': async (req) => ({ found: (await inPage((await activeTab()).id, req.quote)) === true }),
  'library.list': () => engine.task(async (h) => wasm.call('documents', () => h.documents())),
  'library.add': (req, ctx) =>
    engine.task(async (h) => {
      const r = await wasm.call<UpsertReport>('addDocument', () => h.addDocument(req.parsed, forward(ctx)));
      if (r.status !== 'unchanged') await engine.saveLibrary(h);
      return r;
    }),
  'library.addPage': () =>
    engine.task(async (h) => {
      const r = await wasm.call<UpsertReport>('addPage', () => h.addPage());
      if (r.status !== 'unchanged') await engine.saveLibrary(h);
      return r;
    }),
  'library.remove': (req) =>
    engine.task(async (h) => {
      const removed = await wasm.call<boolean>('remove', () => h.remove(req.id));
      if (removed) await engine.saveLibrary(h);
      return { removed };
    }),
  'assistant.ask': (req, ctx) =>
    engine.task((h) => wasm.call<AnswerView>('ask', () => h.ask(req.question, req.scope, forward(ctx)))),
  'assistant.summarize': (req, ctx) =>
    engine.task((h) =>
      wasm.call<SummaryView>('summarize', () => h.summarize('id' in req.target ? req.target.id : undefined, forward(ctx))),
    ),
  'assistant.chat': (req, ctx) =>
    engine.task((h) =>
      wasm.call<AnswerView>('chat', () => h.chat(req.message, req.scope, req.regenerate === true, forward(ctx))),
    ),
  'assistant.chatReset': () =>
    engine.task(async (h) => {
      await wasm.call('chatReset', () => h.chatReset());
      return null;
    }),
  'models.list': () => engine.listModels(),
  'models.select': (req, ctx) => engine.selectModel(req.id, (p) => ctx.progress(p)),
  'models.imported': () => engine.listModels(),
  'models.remove': (req) => engine.removeModel(req.id),
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

engine.onStatus((status) => broadcast({ type: 'status', status }));

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
      console.warn('hearth: ignoring malformed message');
      return;
    }
    if ('ping' in msg) return; // the heartbeat: receiving it kept the worker alive
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
        console.warn(`hearth: ${request.type} failed:`, engine.errorText(e));
        post(port, { id, kind: 'error', error: engine.errorText(e) });
      })
      .finally(() => running.delete(id));
  });
});

// ---- Context menu: "Ask Hearth about the selection" / "Send this page to Hearth" ----

const MENU_ID = 'hearth-capture';

chrome.runtime.onInstalled.addListener(() => {
  chrome.contextMenus.create({
    id: MENU_ID,
    title: 'Ask Hearth about the selection',
    contexts: ['selection'],
  });
  chrome.contextMenus.create({ id: `${MENU_ID}-page`, title: 'Ask Hearth about this page', contexts: ['page'] });
  // The toolbar button (and its shortcut) opens the side panel.
  chrome.sidePanel.setPanelBehavior({ openPanelOnActionClick: true }).catch((e: unknown) => {
    console.warn('hearth: setPanelBehavior failed', e);
  });
});

chrome.contextMenus.onClicked.addListener((info, tab) => {
  if (!String(info.menuItemId).startsWith(MENU_ID) || tab?.id === undefined) return;
  const tabId = tab.id;
  // open() needs the user gesture, which the first `await` would lose: call it first.
  chrome.sidePanel.open({ tabId }).catch((e: unknown) => console.warn('hearth: sidePanel.open failed', e));
  // activeTab grants this tab to us for this click.
  capturePage(tabId)
    .then(async (capture) => {
      await chrome.storage.session.set({ [LAST_CAPTURE_KEY]: capture });
      // The panel may still be opening: tell it now and again once it has had time to connect.
      broadcast({ type: 'page.captured', capture });
      setTimeout(() => broadcast({ type: 'page.captured', capture }), 1500);
    })
    .catch((e: unknown) => console.warn('hearth: cannot read this page', e));
});

chrome.runtime.onMessage.addListener((msg: unknown, sender) => {
  // Content scripts may only hand over a capture; nothing privileged is reachable this way.
  if (sender.id !== chrome.runtime.id || sender.tab === undefined || !isContentMessage(msg)) return;
  const capture = msg.capture;
  chrome.storage.session
    .set({ [LAST_CAPTURE_KEY]: capture })
    .then(() => broadcast({ type: 'page.captured', capture }))
    .catch((e: unknown) => console.error('hearth: storing the capture failed', e));
});

// Test hook, reachable only from the worker's own console / DevTools protocol: simulates a GPU reset.
(globalThis as unknown as { hearthTest: unknown }).hearthTest = { loseDevice: engine.loseDevice };
