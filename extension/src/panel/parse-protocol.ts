// Messages between the side panel (`parse-client.ts`) and its parse worker (`parser.ts`).

import type { ParsedDocument } from '../messages.js';

/** What the wasm `parseDocument` is told about a document besides its bytes. */
export interface ParseHint {
  /** File name or URL: the document's identity in the index. */
  source: string;
  file_name?: string;
  mime?: string;
  title?: string;
  now_ms: number;
}

/** Panel → worker: parse these bytes (transferred). */
export interface ParseRequest {
  id: number;
  bytes: ArrayBuffer;
  hint: ParseHint;
}

/** Worker → panel: the parsed document, or why not. `crashed`: the wasm trapped (a Rust panic);
 *  the instance is unusable and the panel must terminate this worker. */
export type ParseReply =
  | { id: number; ok: true; parsed: ParsedDocument }
  | { id: number; ok: false; error: string; crashed: boolean };
