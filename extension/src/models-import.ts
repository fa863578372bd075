// Importing a model folder the user chose (`<input type=file webkitdirectory>`) into OPFS.
//
// A Hearth pack (a folder with a `manifest.json` of `format: "hearth-pack"` that lists every file
// with its size and sha256) is copied: each file goes to OPFS `models/<id>/<path>` in chunks (so
// gigabyte files never sit in memory) and is hashed while it is copied with the engine's wasm
// `Sha256`; any mismatch deletes the partial folder. A Hugging Face Llama folder (`config.json` and
// safetensors) is converted into a pack in the convert worker (`hf-import.ts`). Either way the
// manifest is written last, so a folder without one is never a finished import. The caller then
// tells the worker (`models.imported`).

import init, * as hearth from '../pkg/hearth_wasm.js';
import { convertHfFolder } from './hf-import.js';
import type { ConvertPhase } from './panel/convert-protocol.js';
import { freshModelDir, removeModelDir } from './opfs.js';
import { formatBytes } from './panel/dom.js';

/** Bytes read, hashed and written at a time. */
const CHUNK = 8 * 1024 * 1024;
const MODEL_ID = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export interface PackFile {
  path: string;
  size: number;
  sha256: string;
}

export interface PackManifest {
  format: 'hearth-pack';
  files: PackFile[];
  name?: string;
}

export interface ImportProgress {
  /** Copying a pack's files, or one of the steps of converting a Hugging Face folder. */
  phase: 'copying' | ConvertPhase;
  /** Bytes (copying, hashing, writing) or tensors (quantising) done so far. */
  copied: number;
  total: number;
  /** The file being copied or hashed. */
  path: string;
}

/** What was imported, in words for the panel. */
export interface ImportResult {
  id: string;
  summary: string;
}

/** A model id from a folder name: lower case, safe characters, at most 64. */
export function sanitizeId(folder: string): string {
  const id = folder
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64)
    .replace(/[-.]+$/, '');
  if (!MODEL_ID.test(id)) throw new Error(`“${folder}” cannot be used as a model name: rename the folder with letters and digits`);
  return id;
}

/** A manifest path is relative, uses `/`, and never climbs out of the folder. */
function safePath(p: string): boolean {
  if (p === '' || p.startsWith('/') || p.includes('\\') || p.length > 512) return false;
  return p.split('/').every((s) => s !== '' && s !== '.' && s !== '..');
}

function checkManifest(v: unknown): PackManifest {
  const bad = (why: string): never => {
    throw new Error(`manifest.json is not a Hearth pack manifest: ${why}`);
  };
  if (typeof v !== 'object' || v === null) return bad('not a JSON object');
  const m = v as Record<string, unknown>;
  if (m.format !== 'hearth-pack') return bad(`format is ${JSON.stringify(m.format)}, not "hearth-pack"`);
  if (!Array.isArray(m.files) || m.files.length === 0) return bad('it lists no files');
  const seen = new Set<string>();
  // A pack's manifest names each file by `name` (crates/hearth-models/src/pack.rs); keep it as `path`.
  m.files = (m.files as unknown[]).map((f) =>
    typeof f === 'object' && f !== null && 'name' in f ? { ...f, path: (f as { name: unknown }).name } : f,
  );
  for (const f of m.files as unknown[]) {
    const e = f as Record<string, unknown> | null;
    if (typeof e !== 'object' || e === null || typeof e.path !== 'string' || !safePath(e.path)) return bad(`bad file entry ${JSON.stringify(f)}`);
    if (typeof e.size !== 'number' || !Number.isSafeInteger(e.size) || e.size < 0) return bad(`${e.path}: bad size`);
    if (typeof e.sha256 !== 'string' || !/^[0-9a-fA-F]{64}$/.test(e.sha256)) return bad(`${e.path}: bad sha256`);
    if (e.path === 'manifest.json' || seen.has(e.path)) return bad(`${e.path} is listed twice`);
    seen.add(e.path);
  }
  return m as unknown as PackManifest;
}

let wasm: Promise<unknown> | null = null;
function loadWasm(): Promise<unknown> {
  wasm ??= init({ module_or_path: chrome.runtime.getURL('hearth_wasm_bg.wasm') });
  return wasm;
}

async function dirFor(root: FileSystemDirectoryHandle, parts: string[]): Promise<FileSystemDirectoryHandle> {
  let d = root;
  for (const p of parts) d = await d.getDirectoryHandle(p, { create: true });
  return d;
}

/** Copies `file` to `dir/<path>`, hashing as it goes; returns the hex sha256. */
async function copyHashed(
  dir: FileSystemDirectoryHandle,
  path: string,
  file: File,
  onBytes: (n: number) => void,
  signal: AbortSignal | undefined,
): Promise<string> {
  const parts = path.split('/');
  const name = parts.pop()!;
  const fh = await (await dirFor(dir, parts)).getFileHandle(name, { create: true });
  const hasher = new hearth.Sha256();
  let out: FileSystemWritableFileStream;
  try {
    out = await fh.createWritable();
  } catch (e) {
    hasher.free();
    throw e;
  }
  try {
    for (let at = 0; at < file.size; at += CHUNK) {
      if (signal?.aborted) throw new Error('cancelled');
      const bytes = new Uint8Array(await file.slice(at, at + CHUNK).arrayBuffer());
      hasher.update(bytes);
      await out.write(bytes);
      onBytes(bytes.length);
    }
    await out.close();
    return hasher.finish().toLowerCase();
  } catch (e) {
    await out.abort().catch(() => undefined);
    throw e;
  } finally {
    hasher.free();
  }
}

/** Imports the chosen folder (all its files, with `webkitRelativePath`); returns the model id. */
export async function importModelFolder(
  chosen: File[],
  onProgress: (p: ImportProgress) => void,
  signal?: AbortSignal,
): Promise<ImportResult> {
  if (chosen.length === 0) throw new Error('the folder is empty');
  const byPath = new Map<string, File>();
  let folder = '';
  for (const f of chosen) {
    const rel = f.webkitRelativePath || f.name;
    const slash = rel.indexOf('/');
    folder ||= slash > 0 ? rel.slice(0, slash) : '';
    byPath.set(slash > 0 ? rel.slice(slash + 1) : rel, f);
  }
  const manifestFile = byPath.get('manifest.json');
  if (manifestFile === undefined) {
    if (byPath.has('config.json')) return importHf(folder, byPath, onProgress, signal);
    throw new Error('this folder is neither a Hearth pack (manifest.json) nor a Hugging Face model (config.json)');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(await manifestFile.text());
  } catch (e) {
    throw new Error(`manifest.json is not valid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  const manifest = checkManifest(parsed);
  const id = sanitizeId(folder || manifest.name || 'model');

  let total = 0;
  for (const f of manifest.files) {
    const file = byPath.get(f.path);
    if (file === undefined) throw new Error(`${f.path} is listed in manifest.json but is not in the folder`);
    if (file.size !== f.size) throw new Error(`${f.path} has ${file.size} bytes but manifest.json says ${f.size}`);
    total += f.size;
  }
  const est = await navigator.storage.estimate().catch(() => null);
  if (est?.quota !== undefined && est.usage !== undefined && est.quota - est.usage < total) {
    throw new Error(`not enough storage for this model (${total} bytes needed, ${est.quota - est.usage} available)`);
  }

  await loadWasm();
  const dir = await freshModelDir(id);
  let copied = 0;
  onProgress({ phase: 'copying', copied, total, path: '' });
  try {
    for (const f of manifest.files) {
      const got = await copyHashed(
        dir,
        f.path,
        byPath.get(f.path)!,
        (n) => {
          copied += n;
          onProgress({ phase: 'copying', copied, total, path: f.path });
        },
        signal,
      );
      if (got !== f.sha256.toLowerCase()) {
        throw new Error(`${f.path} does not match its manifest (sha256 ${got}, expected ${f.sha256.toLowerCase()}): the model was not imported`);
      }
    }
    const mf = await dir.getFileHandle('manifest.json', { create: true });
    const w = await mf.createWritable();
    await w.write(new Uint8Array(await manifestFile.arrayBuffer()));
    await w.close();
  } catch (e) {
    await removeModelDir(id);
    throw e;
  }
  return { id, summary: `Imported ${manifest.name ?? id}: its files match the manifest.` };
}

/** Converts a Hugging Face folder (its top-level files; subfolders such as `original/` are not
 *  part of a safetensors checkpoint) into a pack in OPFS. */
async function importHf(
  folder: string,
  byPath: Map<string, File>,
  onProgress: (p: ImportProgress) => void,
  signal: AbortSignal | undefined,
): Promise<ImportResult> {
  const id = sanitizeId(folder || 'model');
  const files: Record<string, File> = {};
  for (const [path, file] of byPath) if (!path.includes('/') && !path.startsWith('.')) files[path] = file;
  const r = await convertHfFolder(
    id,
    folder,
    files,
    (p) => onProgress({ phase: p.phase, copied: p.done, total: p.total, path: p.file ?? '' }),
    signal,
  );
  const size = r.manifest.files.reduce((s, f) => s + f.size, 0);
  const sources = Object.keys(r.hashes).length;
  const check =
    r.claimed === null
      ? `sha256 of its ${sources} files computed (no manifest in Hearth lists this model)`
      : r.verified.length > 0
        ? `its config matches ${r.claimed}; ${r.verified.length} of ${sources} files match the sha256 in Hearth's manifest`
        : `its config matches ${r.claimed}; sha256 of its ${sources} files computed, but Hearth's manifest has no sha256 to compare with`;
  return { id, summary: `Converted ${folder || id} to a Hearth pack (${r.manifest.quantization}, ${formatBytes(size)}): ${check}.` };
}
