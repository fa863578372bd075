// The convert worker (a module `Worker` the side panel makes from `converter.js` for one import):
// a Hugging Face Llama folder becomes a Hearth pack in OPFS `models/<id>/`, with its own instance
// of the engine's wasm. It is a dedicated worker because the two synchronous APIs the conversion
// needs exist only there: `FileReaderSync` (wasm reads the chosen `File`s in slices) and
// `FileSystemSyncAccessHandle` (wasm's pieces are written to OPFS as they come). A panic or an
// out-of-memory kills this worker only; the panel then removes the partial folder.
//
// Steps: hash every source file (and compare with `manifest/` where it knows the file), check the
// config of a folder that claims to be a known model, convert (quantise to Q4, write the pack),
// write `manifest.json` last. Any failure removes `models/<id>/`.

import init, * as hearth from '../pkg/hearth_wasm.js';
import { freshModelDir, removeModelDir } from './opfs.js';
import type { ConvertedManifest, ConvertReply, ConvertRequest, KnownModel } from './panel/convert-protocol.js';

const scope = self as unknown as DedicatedWorkerGlobalScope;
/** Bytes hashed per read. */
const CHUNK = 8 * 1024 * 1024;
/** The pack files the converter writes before its manifest (`crates/hearth-models/src/pack`). */
const PACK_FILES = ['model.safetensors', 'config.json', 'tokenizer.json', 'tokenizer_config.json'];

function reply(msg: ConvertReply): void {
  scope.postMessage(msg);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The known model the folder claims to be: by its folder name or config.json `_name_or_path`. */
async function claimed(req: ConvertRequest): Promise<KnownModel | null> {
  let nameOrPath = '';
  const config = req.files['config.json'];
  if (config !== undefined) {
    try {
      const v = JSON.parse(await config.text()) as { _name_or_path?: unknown };
      if (typeof v._name_or_path === 'string') nameOrPath = v._name_or_path.toLowerCase();
    } catch {
      // the converter reports a malformed config.json with its own message
    }
  }
  const folder = req.folder.toLowerCase();
  return req.known.find((k) => k.claims.some((c) => c.toLowerCase() === folder || c.toLowerCase() === nameOrPath)) ?? null;
}

/** sha256 of every source file, compared with the claimed model's manifest where it lists one. */
function hashSources(req: ConvertRequest, model: KnownModel | null): { hashes: Record<string, string>; verified: string[] } {
  const reader = new FileReaderSync();
  const names = Object.keys(req.files).sort();
  const total = names.reduce((s, n) => s + (req.files[n]?.size ?? 0), 0);
  const hashes: Record<string, string> = {};
  const verified: string[] = [];
  let done = 0;
  for (const name of names) {
    const file = req.files[name]!;
    const listed = model?.files.find((f) => f.path === name);
    if (listed?.size != null && listed.size !== file.size) {
      throw new Error(`${name} has ${file.size} bytes, but ${model!.name}'s has ${listed.size}: this folder is not ${model!.name}`);
    }
    const hasher = new hearth.Sha256();
    try {
      for (let at = 0; at < file.size; at += CHUNK) {
        const bytes = new Uint8Array(reader.readAsArrayBuffer(file.slice(at, at + CHUNK)));
        hasher.update(bytes);
        done += bytes.length;
        reply({ kind: 'progress', phase: 'hashing', done, total, file: name });
      }
      hashes[name] = hasher.finish().toLowerCase();
    } finally {
      hasher.free();
    }
    if (listed?.sha256 != null) {
      if (listed.sha256.toLowerCase() !== hashes[name]) {
        throw new Error(`${name} does not match ${model!.name}'s manifest (sha256 ${hashes[name]}, expected ${listed.sha256.toLowerCase()})`);
      }
      verified.push(name);
    }
  }
  return { hashes, verified };
}

/** Sync handles for the pack's files, opened before the (synchronous) conversion starts. */
async function openPackFiles(dir: FileSystemDirectoryHandle, files: Record<string, File>): Promise<Map<string, FileSystemSyncAccessHandle>> {
  const handles = new Map<string, FileSystemSyncAccessHandle>();
  try {
    for (const name of PACK_FILES) {
      if (name === 'tokenizer_config.json' && files[name] === undefined) continue;
      const fh = await dir.getFileHandle(name, { create: true });
      handles.set(name, await fh.createSyncAccessHandle());
    }
  } catch (e) {
    for (const h of handles.values()) h.close();
    throw e;
  }
  return handles;
}

async function convert(req: ConvertRequest): Promise<ConvertReply> {
  await init({ module_or_path: new URL('hearth_wasm_bg.wasm', scope.location.href).href });
  const model = await claimed(req);
  const { hashes, verified } = hashSources(req, model);

  const dir = await freshModelDir(req.id);
  let handles = new Map<string, FileSystemSyncAccessHandle>();
  try {
    handles = await openPackFiles(dir, req.files);
    // The manifest is kept back and written only once everything else is on disk.
    const manifestPieces: Uint8Array[] = [];
    let current: { handle: FileSystemSyncAccessHandle | null; at: number } | null = null;
    const sink = (op: string, arg: unknown): void => {
      if (op === 'begin') {
        const name = String(arg);
        const handle = name === 'manifest.json' ? null : (handles.get(name) ?? null);
        if (handle === null && name !== 'manifest.json') throw new Error(`unexpected pack file ${name}`);
        current = { handle, at: 0 };
      } else if (op === 'write' && current !== null && arg instanceof Uint8Array) {
        if (current.handle === null) {
          manifestPieces.push(arg);
        } else {
          const n = current.handle.write(arg, { at: current.at });
          if (n !== arg.length) throw new Error(`short write to OPFS (${n} of ${arg.length} bytes): is the disk full?`);
          current.at += n;
        }
      } else if (op === 'end' && current !== null) {
        current.handle?.flush();
        current = null;
      } else {
        throw new Error(`bad sink call ${op}`);
      }
    };
    const known = model === null ? undefined : JSON.stringify(model.hf_config);
    const manifest = hearth.convertHfFolder(
      req.files,
      sink,
      (p: { phase: 'quantising' | 'writing'; done: number; total: number }) => reply({ kind: 'progress', ...p }),
      model?.name,
      known,
    ) as ConvertedManifest;
    for (const h of handles.values()) h.close();
    handles.clear();
    const out = await (await dir.getFileHandle('manifest.json', { create: true })).createSyncAccessHandle();
    try {
      let at = 0;
      for (const piece of manifestPieces) at += out.write(piece, { at });
      out.flush();
    } finally {
      out.close();
    }
    return { kind: 'done', manifest, hashes, claimed: model?.name ?? null, verified };
  } catch (e) {
    for (const h of handles.values()) h.close();
    await removeModelDir(req.id);
    throw e;
  }
}

scope.addEventListener('message', (ev: MessageEvent<ConvertRequest>) => {
  void convert(ev.data).then(reply, (e: unknown) => {
    const crashed = e instanceof WebAssembly.RuntimeError;
    reply({ kind: 'error', error: crashed ? `the converter crashed (${message(e)})` : message(e), crashed });
  });
});
