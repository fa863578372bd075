// The side panel's end of the parse worker (`parser.ts`): `parseFile(bytes, hint)`.
//
// One worker is reused until it fails: a crash report (the wasm trapped), an `error` event (the
// worker itself died) or a document taking longer than `TIMEOUT_MS` terminates it, rejects the
// call with a readable message, and the next call starts a fresh worker. Calls run one at a time.

import type { ParsedDocument } from './messages.js';
import type { ParseHint, ParseReply, ParseRequest } from './panel/parse-protocol.js';

export type { ParseHint } from './panel/parse-protocol.js';

/** A document that takes longer than this is abandoned (and its worker terminated). */
export const TIMEOUT_MS = 60_000;

let worker: Worker | null = null;
let nextId = 1;
/** Calls are serialised: the wasm parse is synchronous, so a queue costs nothing. */
let queue: Promise<unknown> = Promise.resolve();

function workerUrl(): string {
  return typeof chrome !== 'undefined' && chrome.runtime?.getURL ? chrome.runtime.getURL('parser.js') : 'parser.js';
}

function stop(): void {
  worker?.terminate();
  worker = null;
}

function parseNow(bytes: Uint8Array, hint: ParseHint): Promise<ParsedDocument> {
  const w = (worker ??= new Worker(workerUrl(), { type: 'module', name: 'hearth-parser' }));
  const id = nextId++;
  return new Promise<ParsedDocument>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      w.removeEventListener('message', onMessage);
      w.removeEventListener('error', onError);
    };
    const fail = (msg: string): void => {
      done();
      if (worker === w) stop();
      reject(new Error(msg));
    };
    const onMessage = (ev: MessageEvent<ParseReply>): void => {
      const r = ev.data;
      if (r.id !== id) return;
      if (r.ok) {
        done();
        resolve(r.parsed);
      } else if (r.crashed) {
        fail(r.error);
      } else {
        done();
        reject(new Error(r.error));
      }
    };
    const onError = (ev: ErrorEvent): void => {
      ev.preventDefault();
      fail(ev.message ? `the parser crashed (${ev.message})` : 'the parser crashed');
    };
    const timer = setTimeout(() => fail(`the parser took longer than ${TIMEOUT_MS / 1000} s`), TIMEOUT_MS);
    w.addEventListener('message', onMessage);
    w.addEventListener('error', onError);
    // Copy into a buffer of our own so the caller's bytes are not detached by the transfer.
    const own = bytes.slice().buffer;
    const msg: ParseRequest = { id, bytes: own, hint };
    w.postMessage(msg, [own]);
  });
}

/** Parses one document in the parse worker. `hint.now_ms` defaults to now. */
export function parseFile(bytes: Uint8Array, hint: Omit<ParseHint, 'now_ms'> & { now_ms?: number }): Promise<ParsedDocument> {
  const full: ParseHint = { ...hint, now_ms: hint.now_ms ?? Date.now() };
  const run = queue.then(
    () => parseNow(bytes, full),
    () => parseNow(bytes, full),
  );
  queue = run.catch(() => undefined);
  return run;
}

/** Terminates the worker (e.g. when the panel closes); the next call starts a new one. */
export function disposeParser(): void {
  stop();
}
