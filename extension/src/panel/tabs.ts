// The tab strip (role=tablist): click or arrow keys switch tabs; the choice is remembered.

import type { TabName } from './context.js';

const TABS: readonly TabName[] = ['page', 'library', 'chat', 'models'];
const KEY = 'hearth.tab';

export function setupTabs(onShow: (name: TabName) => void): (name: TabName) => void {
  const buttons = TABS.map((t) => document.getElementById(`tab-${t}`) as HTMLButtonElement);

  function show(name: TabName, focus = false): void {
    TABS.forEach((t, i) => {
      const selected = t === name;
      const b = buttons[i]!;
      b.setAttribute('aria-selected', String(selected));
      b.tabIndex = selected ? 0 : -1;
      const panel = document.getElementById(`panel-${t}`);
      if (panel !== null) panel.hidden = !selected;
      if (selected && focus) b.focus();
    });
    document.body.dataset.tab = name;
    try {
      sessionStorage.setItem(KEY, name);
    } catch {
      // Storage may be unavailable; remembering is a nicety.
    }
    onShow(name);
  }

  buttons.forEach((b, i) => {
    b.addEventListener('click', () => show(TABS[i]!));
    b.addEventListener('keydown', (e) => {
      const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
      if (e.key === 'Home') show(TABS[0]!, true);
      else if (e.key === 'End') show(TABS[TABS.length - 1]!, true);
      else if (step !== 0) show(TABS[(i + step + TABS.length) % TABS.length]!, true);
      else return;
      e.preventDefault();
    });
  });

  let initial: TabName = 'page';
  try {
    const saved = sessionStorage.getItem(KEY);
    if (saved !== null && (TABS as readonly string[]).includes(saved)) initial = saved as TabName;
  } catch {
    // As above.
  }
  show(initial);
  return (name) => show(name);
}
