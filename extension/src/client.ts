// The pages' side of the protocol in `messages.ts`: typed calls to the service worker over a port.

import {
  HEARTBEAT_MS,
  RPC_PORT,
  isFromWorker,
  type FromWorker,
  type HearthEvent,
  type Progresses,
  type RequestOf,
  type RequestType,
  type Responses,
  type ToWorker,
} from './messages.js';

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  onProgress: ((data: unknown) => void) | undefined;
}

export interface CallOptions<T extends RequestType> {
  onProgress?: (data: Progresses[T]) => void;
  signal?: AbortSignal;
}

export class HearthClient {
  private port: chrome.runtime.Port | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(e: HearthEvent) => void>();
  private heartbeat: ReturnType<typeof setInterval> | null = null;

  /** While calls are pending, pings keep the worker alive (each message resets its idle timer);
   *  with nothing pending the worker is left to stop. */
  private beat(): void {
    if (this.pending.size > 0 && this.heartbeat === null) {
      this.heartbeat = setInterval(() => this.send({ ping: true }), HEARTBEAT_MS);
    } else if (this.pending.size === 0 && this.heartbeat !== null) {
      clearInterval(this.heartbeat);
      this.heartbeat = null;
    }
  }

  /** Sends `request` to the service worker; resolves with its typed answer. */
  call<T extends RequestType>(request: RequestOf<T>, opts: CallOptions<T> = {}): Promise<Responses[T]> {
    const id = this.nextId++;
    const port = this.connect();
    return new Promise<Responses[T]>((resolve, reject) => {
      if (opts.signal?.aborted) {
        reject(new Error('cancelled'));
        return;
      }
      this.pending.set(id, {
        resolve: (v) => resolve(v as Responses[T]),
        reject,
        onProgress: opts.onProgress as ((data: unknown) => void) | undefined,
      });
      opts.signal?.addEventListener('abort', () => {
        if (this.pending.delete(id)) {
          this.beat();
          this.send({ id, cancel: true });
          reject(new Error('cancelled'));
        }
      });
      port.postMessage({ id, request } satisfies ToWorker);
      this.beat();
    });
  }

  /** Listens for events the worker pushes (e.g. a page sent from the context menu). */
  onEvent(f: (e: HearthEvent) => void): () => void {
    this.listeners.add(f);
    this.connect();
    return () => this.listeners.delete(f);
  }

  private send(msg: ToWorker): void {
    try {
      this.port?.postMessage(msg);
    } catch {
      // Disconnected: nothing to cancel any more.
    }
  }

  /** The open port, reconnecting if the worker was stopped (Chrome stops idle workers). */
  private connect(): chrome.runtime.Port {
    if (this.port !== null) return this.port;
    const port = chrome.runtime.connect({ name: RPC_PORT });
    port.onMessage.addListener((msg: unknown) => {
      if (isFromWorker(msg)) this.receive(msg);
    });
    port.onDisconnect.addListener(() => {
      this.port = null;
      const err = new Error('the Hearth service worker stopped before answering; please try again');
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
      this.beat();
    });
    this.port = port;
    return port;
  }

  private receive(msg: FromWorker): void {
    if (msg.kind === 'event') {
      for (const f of this.listeners) f(msg.event);
      return;
    }
    const p = this.pending.get(msg.id);
    if (p === undefined) return;
    switch (msg.kind) {
      case 'progress':
        p.onProgress?.(msg.data);
        break;
      case 'result':
        this.pending.delete(msg.id);
        this.beat();
        p.resolve(msg.value);
        break;
      case 'error':
        this.pending.delete(msg.id);
        this.beat();
        p.reject(new Error(msg.error));
        break;
    }
  }
}
