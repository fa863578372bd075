// The origin-private file system as Hearth lays it out: `library/` (the index snapshot) and
// `models/<id>/` (imported Hearth packs). Shared by the service worker, the panel and the convert
// worker, which each bundle it.

export const MODELS_DIR = 'models';

/** The directory at `path` (`a/b/c`), created on the way when `create`. */
export async function opfsDir(path: string, create: boolean): Promise<FileSystemDirectoryHandle> {
  let dir = await navigator.storage.getDirectory();
  for (const part of path.split('/')) dir = await dir.getDirectoryHandle(part, { create });
  return dir;
}

/** An empty `models/<id>/` for an import: a previous model of that id is removed first. */
export async function freshModelDir(id: string): Promise<FileSystemDirectoryHandle> {
  await removeModelDir(id);
  return (await opfsDir(MODELS_DIR, true)).getDirectoryHandle(id, { create: true });
}

/** Removes `models/<id>/` (an unfinished or failed import), if it is there. */
export async function removeModelDir(id: string): Promise<void> {
  const models = await opfsDir(MODELS_DIR, true);
  await models.removeEntry(id, { recursive: true }).catch(() => undefined);
}
