// Messages between the side panel (`hf-import.ts`) and its convert worker (`converter.ts`).

/** A model Hearth knows by name (from `manifest/*.json`, shipped as `models/known-models.json`). */
export interface KnownModel {
  /** The model's display name, e.g. "Llama-3.2-1B-Instruct". */
  name: string;
  /** Folder names and `_name_or_path` values by which a folder claims to be this model. */
  claims: string[];
  /** Values its `config.json` must hold (Hugging Face key names). */
  hf_config: Record<string, unknown>;
  /** Its files; `size` and `sha256` are `null` where they are not known. */
  files: { path: string; size: number | null; sha256: string | null }[];
}

/** Panel → worker: convert this folder into OPFS `models/<id>/`. */
export interface ConvertRequest {
  id: string;
  /** The chosen folder's name (a claim of identity, checked against `known`). */
  folder: string;
  /** The folder's top-level files by name. */
  files: Record<string, File>;
  known: KnownModel[];
}

export type ConvertPhase = 'hashing' | 'quantising' | 'writing';

/** The pack's manifest as the Rust writer makes it. */
export interface ConvertedManifest {
  format: string;
  architecture: string;
  quantization: string;
  files: { name: string; size: number; sha256: string }[];
}

/** Worker → panel. `crashed`: the wasm trapped (a Rust panic); the panel must terminate the worker. */
export type ConvertReply =
  | { kind: 'progress'; phase: ConvertPhase; done: number; total: number; file?: string }
  | {
      kind: 'done';
      manifest: ConvertedManifest;
      /** Every source file's sha256. */
      hashes: Record<string, string>;
      /** The known model the folder claims to be, if any (its config.json matched). */
      claimed: string | null;
      /** Source files whose sha256 matched the known model's manifest. */
      verified: string[];
    }
  | { kind: 'error'; error: string; crashed: boolean };
