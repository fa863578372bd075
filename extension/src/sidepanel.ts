// The side panel: four tabs (This page, Library, Chat, Models) over the engine in the service
// worker, a state banner, and citation chips that lead back to the passages. Everything is
// built with DOM calls and textContent; nothing remote is loaded.

import { HearthClient } from './client.js';
import type { EngineStatus, HearthEvent } from './messages.js';
import { renderChips, setupPassageView } from './panel/citations.js';
import type { PanelContext, TabName } from './panel/context.js';
import { setupChatTab } from './panel/chat-tab.js';
import { setupLibraryTab } from './panel/library-tab.js';
import { setupModelsTab } from './panel/models-tab.js';
import { setupPageTab } from './panel/page-tab.js';
import { reportError, showStarting, showStatus, showStatusError } from './panel/status.js';
import { setupTabs } from './panel/tabs.js';

const client = new HearthClient();
let status: EngineStatus | null = null;
const statusListeners: ((s: EngineStatus) => void)[] = [];
let showTab: (name: TabName) => void = () => undefined;
const shown = new Set<TabName>();

function onStatus(s: EngineStatus): void {
  status = s;
  showStatus(s);
  for (const f of statusListeners) f(s);
}

const ctx: PanelContext = {
  client,
  status: () => status,
  onStatus: (f) => {
    statusListeners.push(f);
  },
  showTab: (name) => showTab(name),
  reportError,
  chips: (citations, into) => renderChips(client, citations, into),
};

showStarting();
setupPassageView();
const page = setupPageTab(ctx);
const library = setupLibraryTab(ctx);
setupChatTab(ctx);
const models = setupModelsTab(ctx);

showTab = setupTabs((name) => {
  // Lists load when their tab is first shown (and on status changes after that).
  if (shown.has(name)) return;
  shown.add(name);
  if (name === 'library') void library.refresh();
  if (name === 'models') void models.refresh();
});

client.onEvent((e: HearthEvent) => {
  switch (e.type) {
    case 'status':
      onStatus(e.status);
      break;
    case 'page.captured':
      if (e.capture.fromSelection) page.prefillFromSelection(e.capture);
      else showTab('page');
      break;
  }
});

client.call({ type: 'status' }).then(onStatus, showStatusError);
void models.refresh();
