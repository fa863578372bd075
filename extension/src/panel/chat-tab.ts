// The Chat tab: a multi-turn conversation over the library, the page, or both, with streamed
// answers, Stop, Regenerate, Copy and Reset. The service worker keeps the conversation's history.

import type { AnswerView, Scope, TaskProgress } from '../messages.js';
import { emptyAnswer, renderMarkdown } from '../markdown.js';
import type { PanelContext } from './context.js';
import { byTestId, errorMessage, h, isCancelled, throttled } from './dom.js';
import { describeProgress, ensurePageIndexed, signalOpt } from './page-index.js';
import { clearError } from './status.js';

interface AssistantMessage {
  el: HTMLDivElement;
  body: HTMLDivElement;
  chips: HTMLDivElement;
  note: HTMLParagraphElement;
  text: string;
}

export function setupChatTab(ctx: PanelContext): void {
  const messages = byTestId('chat-messages');
  const form = byTestId<HTMLFormElement>('chat-form');
  const input = byTestId<HTMLTextAreaElement>('chat-input');
  const send = byTestId<HTMLButtonElement>('chat-send');
  const stop = byTestId<HTMLButtonElement>('chat-stop');
  const regenerate = byTestId<HTMLButtonElement>('chat-regenerate');
  const copy = byTestId<HTMLButtonElement>('chat-copy');
  const reset = byTestId<HTMLButtonElement>('chat-reset');
  const scopeSelect = byTestId<HTMLSelectElement>('chat-scope');

  let running: AbortController | null = null;
  let lastUser: string | null = null;
  let lastAnswer: AssistantMessage | null = null;

  function updateButtons(): void {
    const busy = running !== null;
    send.disabled = busy;
    stop.disabled = !busy;
    regenerate.disabled = busy || lastUser === null;
    copy.disabled = busy || lastAnswer === null || lastAnswer.text === '';
    reset.disabled = busy;
  }

  function addUser(text: string): void {
    messages.append(h('div', { class: 'msg user', testid: 'chat-message', data: { role: 'user', state: 'done' } }, h('p', { class: 'msg-text', text })));
  }

  function addAssistant(): AssistantMessage {
    const body = h('div', { class: 'msg-body answer' });
    const note = h('p', { class: 'step' });
    const chips = h('div', { class: 'chips', attrs: { 'aria-label': 'Sources' } });
    const el = h('div', { class: 'msg assistant', testid: 'chat-message', data: { role: 'assistant', state: 'streaming' } }, note, body, chips);
    messages.append(el);
    return { el, body, chips, note, text: '' };
  }

  const scroll = (): void => {
    messages.scrollTop = messages.scrollHeight;
  };

  async function turn(message: string, regen: boolean): Promise<void> {
    const scope = scopeSelect.value as Scope;
    const ctl = new AbortController();
    running = ctl;
    lastUser = message;
    const m = addAssistant();
    lastAnswer = m;
    updateButtons();
    scroll();
    let streamed = '';
    const render = throttled(() => {
      // A frame can fire after the final answer was shown: never redraw over it.
      if (m.el.dataset.state !== 'streaming') return;
      m.body.replaceChildren(renderMarkdown(streamed));
      scroll();
    });
    const onProgress = (p: TaskProgress): void => {
      if ('piece' in p) {
        streamed += p.piece;
        m.text = streamed;
        m.note.textContent = '';
        render();
      } else {
        const t = describeProgress(p);
        if (t !== null) m.note.textContent = t;
      }
    };
    try {
      if (scope === 'page' || scope === 'all') {
        try {
          await ensurePageIndexed(ctx.client, { onStep: (t) => (m.note.textContent = t), signal: ctl.signal });
        } catch (e) {
          // With "both", a tab that cannot be read (a browser page, say) leaves the library.
          if (scope === 'page' || isCancelled(e)) throw e;
        }
      }
      m.note.textContent = 'Thinking…';
      const a: AnswerView = await ctx.client.call(
        { type: 'assistant.chat', message, scope, ...(regen ? { regenerate: true } : {}) },
        { ...signalOpt(ctl.signal), onProgress },
      );
      m.text = a.text;
      m.body.replaceChildren(a.text.trim() === '' && !a.stopped ? emptyAnswer() : renderMarkdown(a.text));
      // An answer that cites nothing still shows what it was given to read.
      ctx.chips(a.citations.length > 0 ? a.citations : a.sources, m.chips);
      m.note.textContent = a.stopped ? 'Stopped.' : a.grounded ? '' : 'Nothing relevant was found in what Hearth searched.';
      m.el.dataset.state = 'done';
      clearError();
    } catch (e) {
      if (isCancelled(e)) {
        m.note.textContent = 'Stopped.';
        m.el.dataset.state = 'done';
      } else {
        m.el.dataset.state = 'error';
        m.note.textContent = '';
        m.body.append(h('p', { class: 'error', text: errorMessage(e) }));
        ctx.reportError(e);
      }
    } finally {
      running = null;
      updateButtons();
      scroll();
    }
  }

  function sendInput(): void {
    const message = input.value.trim();
    if (message === '' || running !== null) return;
    input.value = '';
    addUser(message);
    void turn(message, false);
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sendInput();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendInput();
    }
  });
  stop.addEventListener('click', () => running?.abort());
  regenerate.addEventListener('click', () => {
    if (lastUser === null || running !== null) return;
    lastAnswer?.el.remove();
    lastAnswer = null;
    void turn(lastUser, true);
  });
  copy.addEventListener('click', () => {
    const text = lastAnswer?.text ?? '';
    if (text === '') return;
    navigator.clipboard.writeText(text).then(
      () => flash(copy, 'Copied'),
      (e: unknown) => flash(copy, `Copy failed: ${errorMessage(e)}`),
    );
  });
  reset.addEventListener('click', () => {
    if (running !== null) return;
    reset.disabled = true;
    ctx.client.call({ type: 'assistant.chatReset' }).then(
      () => {
        messages.replaceChildren();
        lastUser = null;
        lastAnswer = null;
        updateButtons();
        input.focus();
      },
      (e: unknown) => {
        messages.append(h('p', { class: 'error', text: `Could not start a new chat: ${errorMessage(e)}` }));
        updateButtons();
      },
    );
  });
  updateButtons();
}

/** Briefly changes a button's label (e.g. "Copied"). */
function flash(b: HTMLButtonElement, text: string): void {
  const label = b.dataset.label ?? b.textContent ?? '';
  b.dataset.label = label;
  b.textContent = text;
  setTimeout(() => {
    b.textContent = label;
  }, 1500);
}
