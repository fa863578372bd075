// What the side panel's tabs share: the client, the engine's state, and a few panel-wide actions.

import type { HearthClient } from '../client.js';
import type { CitationView, EngineStatus } from '../messages.js';

export type TabName = 'page' | 'library' | 'chat' | 'models';

export interface PanelContext {
  client: HearthClient;
  /** The last engine status seen (null before the first answer). */
  status(): EngineStatus | null;
  /** Calls `f` on every new status (from the `status` call and `status` events). */
  onStatus(f: (s: EngineStatus) => void): void;
  showTab(name: TabName): void;
  /** Shows an error that concerns the engine as a whole (out of GPU memory, worker stopped). */
  reportError(e: unknown): void;
  /** Citation chips for an answer (page chips highlight the tab, library chips open the viewer). */
  chips(citations: CitationView[], into: HTMLElement): void;
}
