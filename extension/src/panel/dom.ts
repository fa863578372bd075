// DOM helpers for the side panel: elements are built with textContent only (never innerHTML).

type Child = Node | string | null | undefined | false;

export interface Props {
  class?: string | undefined;
  testid?: string | undefined;
  text?: string | undefined;
  title?: string | undefined;
  attrs?: Record<string, string>;
  data?: Record<string, string>;
}

/** `h('button', { class: 'x', testid: 'y', text: 'Go' })`: an element with text and attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, props: Props = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (props.class !== undefined) e.className = props.class;
  if (props.testid !== undefined) e.dataset.testid = props.testid;
  if (props.title !== undefined) e.title = props.title;
  for (const [k, v] of Object.entries(props.attrs ?? {})) e.setAttribute(k, v);
  for (const [k, v] of Object.entries(props.data ?? {})) e.dataset[k] = v;
  if (props.text !== undefined) e.textContent = props.text;
  for (const c of children) if (c !== null && c !== undefined && c !== false) e.append(c);
  return e;
}

/** The element with `data-testid` = `id` (inside `root`); the panel's HTML must have it. */
export function byTestId<T extends HTMLElement = HTMLElement>(id: string, root: ParentNode = document): T {
  const e = root.querySelector<T>(`[data-testid="${id}"]`);
  if (e === null) throw new Error(`sidepanel.html lacks [data-testid="${id}"]`);
  return e;
}

export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Whether a call failed because the user pressed Stop. */
export function isCancelled(e: unknown): boolean {
  return e instanceof Error && (e.message === 'cancelled' || e.name === 'AbortError');
}

/** 1.5 KiB, 12.3 MiB, 1.20 GiB. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`;
  return `${(n / 1024 ** 3).toFixed(2)} GiB`;
}

export function formatDate(ms: number): string {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' });
}

/** Sets a `<progress>` to done/total (indeterminate while the total is unknown). */
export function setProgress(bar: HTMLProgressElement, done: number, total: number): void {
  if (total > 0) {
    bar.max = total;
    bar.value = Math.min(done, total);
  } else {
    bar.removeAttribute('value');
  }
}

/** Runs `f` once per animation frame at most (for re-rendering streamed text). */
export function throttled(f: () => void): () => void {
  let queued = false;
  return () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      f();
    });
  };
}
