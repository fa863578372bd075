// Importing a Hugging Face Llama folder: the side panel's end of the convert worker
// (`converter.ts`). One throwaway worker per import: it converts the folder into a Hearth pack in
// OPFS `models/<id>/` and is terminated afterwards. If it dies (a crash, out of memory) or the
// import is cancelled, the worker is terminated and the partial folder removed here, so a folder
// without `manifest.json` never outlives a failed import.

import { MODELS_DIR, opfsDir } from './opfs.js';
import type { ConvertedManifest, ConvertPhase, ConvertReply, ConvertRequest, KnownModel } from './panel/convert-protocol.js';

export interface ConvertProgress {
  phase: ConvertPhase;
  done: number;
  total: number;
  file?: string;
}

export interface ConvertResult {
  manifest: ConvertedManifest;
  hashes: Record<string, string>;
  claimed: string | null;
  verified: string[];
}

function extensionUrl(path: string): string {
  return typeof chrome !== 'undefined' && chrome.runtime?.getURL ? chrome.runtime.getURL(path) : path;
}

/** The models `manifest/` describes by their Hugging Face config (`build.mjs` ships them). */
async function knownModels(): Promise<KnownModel[]> {
  try {
    const res = await fetch(extensionUrl('models/known-models.json'));
    return res.ok ? ((await res.json()) as KnownModel[]) : [];
  } catch {
    return [];
  }
}

/** Removes `models/<id>/`; retried briefly because a terminated worker releases its handles late. */
export async function removeModelFolder(id: string): Promise<void> {
  const models = await opfsDir(MODELS_DIR, true);
  for (let attempt = 0; ; attempt++) {
    try {
      await models.removeEntry(id, { recursive: true });
      return;
    } catch (e) {
      if (e instanceof DOMException && e.name === 'NotFoundError') return;
      if (attempt >= 20) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Converts the folder's top-level `files` into OPFS `models/<id>/`. */
export async function convertHfFolder(
  id: string,
  folder: string,
  files: Record<string, File>,
  onProgress: (p: ConvertProgress) => void,
  signal?: AbortSignal,
): Promise<ConvertResult> {
  const request: ConvertRequest = { id, folder, files, known: await knownModels() };
  const worker = new Worker(extensionUrl('converter.js'), { type: 'module', name: 'hearth-converter' });
  try {
    return await new Promise<ConvertResult>((resolve, reject) => {
      const fail = (why: string): void => {
        worker.terminate();
        reject(new Error(why));
      };
      if (signal?.aborted) return fail('cancelled');
      signal?.addEventListener('abort', () => fail('cancelled'), { once: true });
      worker.addEventListener('error', (ev: ErrorEvent) => {
        ev.preventDefault();
        fail(ev.message ? `the converter stopped (${ev.message})` : 'the converter stopped (out of memory?)');
      });
      worker.addEventListener('messageerror', () => fail('the converter sent an unreadable message'));
      worker.addEventListener('message', (ev: MessageEvent<ConvertReply>) => {
        const r = ev.data;
        if (r.kind === 'progress') {
          const p: ConvertProgress = { phase: r.phase, done: r.done, total: r.total };
          if (r.file !== undefined) p.file = r.file;
          onProgress(p);
        } else if (r.kind === 'done') {
          resolve({ manifest: r.manifest, hashes: r.hashes, claimed: r.claimed, verified: r.verified });
        } else {
          fail(r.error);
        }
      });
      worker.postMessage(request);
    });
  } catch (e) {
    // The worker removes the folder on the failures it sees; a killed worker cannot.
    await removeModelFolder(id).catch(() => undefined);
    throw e;
  } finally {
    worker.terminate();
  }
}
