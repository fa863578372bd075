// The parse worker (a module `Worker` the side panel makes from `parser.js`): turns a file's or a
// page's bytes into a `ParsedDocument` with its own instance of the engine's wasm. Parsing runs
// here, never in the service worker, so a hostile or broken document can at worst crash this
// throwaway worker: a Rust panic traps (`WebAssembly.RuntimeError`), the reply says `crashed`,
// and the panel terminates the worker and starts a fresh one for the next document.

import init, * as hearth from '../pkg/hearth_wasm.js';
import type { ParsedDocument } from './messages.js';
import type { ParseReply, ParseRequest } from './panel/parse-protocol.js';

/** Tokens per chunk (the encoder's window is 256 word pieces). */
const MAX_TOKENS = 256;
const TOKENIZER = 'models/all-minilm-l6-v2/tokenizer.json';

const scope = self as unknown as DedicatedWorkerGlobalScope;

/** URLs relative to this worker's script (`chrome-extension://<id>/parser.js`). */
const url = (path: string): string => new URL(path, scope.location.href).href;

let ready: Promise<Uint8Array> | null = null;

/** Loads the wasm and the encoder's tokenizer once. */
function setup(): Promise<Uint8Array> {
  ready ??= (async () => {
    await init({ module_or_path: url('hearth_wasm_bg.wasm') });
    const res = await fetch(url(TOKENIZER));
    if (!res.ok) throw new Error(`could not load the tokenizer (${TOKENIZER}: HTTP ${res.status})`);
    return new Uint8Array(await res.arrayBuffer());
  })();
  return ready;
}

function reply(msg: ParseReply): void {
  scope.postMessage(msg);
}

scope.addEventListener('message', (ev: MessageEvent<ParseRequest>) => {
  const { id, bytes, hint } = ev.data;
  void (async () => {
    let tokenizer: Uint8Array;
    try {
      tokenizer = await setup();
    } catch (e) {
      reply({ id, ok: false, error: `the parser could not start: ${message(e)}`, crashed: true });
      return;
    }
    try {
      const parsed = hearth.parseDocument(new Uint8Array(bytes), hint, tokenizer, MAX_TOKENS) as ParsedDocument;
      reply({ id, ok: true, parsed });
    } catch (e) {
      const crashed = e instanceof WebAssembly.RuntimeError;
      reply({ id, ok: false, error: crashed ? 'the parser crashed' : message(e), crashed });
    }
  })();
});

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
