// The "This page" tab: summarize the active tab, ask about it, add it to the library.

import type { AnswerView, PageCapture, SummaryView, TaskProgress } from '../messages.js';
import { emptyAnswer, renderMarkdown } from '../markdown.js';
import type { PanelContext } from './context.js';
import { byTestId, errorMessage, h, isCancelled, throttled } from './dom.js';
import { describeProgress, ensurePageIndexed, signalOpt } from './page-index.js';
import { clearError } from './status.js';

const MAX_QUOTED = 1500;

export function setupPageTab(ctx: PanelContext): { prefillFromSelection(cap: PageCapture): void } {
  const summarize = byTestId<HTMLButtonElement>('page-summarize');
  const addToLibrary = byTestId<HTMLButtonElement>('page-add-to-library');
  const form = byTestId<HTMLFormElement>('page-ask-form');
  const input = byTestId<HTMLTextAreaElement>('page-ask-input');
  const submit = byTestId<HTMLButtonElement>('page-ask-submit');
  const stop = byTestId<HTMLButtonElement>('page-stop');
  const stepLine = byTestId('page-step');
  const output = byTestId('page-output');
  const chips = byTestId('page-citations');

  let running: AbortController | null = null;
  let streamed = '';
  // A frame can fire after the final answer was shown: only an output still streaming is redrawn.
  const render = throttled(() => {
    if (output.dataset.state === 'streaming') output.replaceChildren(renderMarkdown(streamed));
  });

  const step = (text: string): void => {
    stepLine.textContent = text;
  };

  const onProgress = (p: TaskProgress): void => {
    if ('piece' in p) {
      streamed += p.piece;
      output.dataset.state = 'streaming';
      render();
      return;
    }
    const text = describeProgress(p);
    if (text !== null) step(text);
  };

  /** Runs one action with the buttons disabled and Stop enabled; shows its error in place. */
  async function run(action: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (running !== null) return;
    const ctl = new AbortController();
    running = ctl;
    for (const b of [summarize, addToLibrary, submit]) b.disabled = true;
    stop.disabled = false;
    streamed = '';
    output.replaceChildren();
    output.dataset.state = 'streaming';
    chips.replaceChildren();
    try {
      await action(ctl.signal);
      clearError();
    } catch (e) {
      if (isCancelled(e)) {
        output.dataset.state = 'done';
        step('Stopped.');
      } else {
        output.dataset.state = 'error';
        step('');
        output.append(h('p', { class: 'error', text: errorMessage(e) }));
        ctx.reportError(e);
      }
    } finally {
      running = null;
      for (const b of [summarize, addToLibrary, submit]) b.disabled = false;
      stop.disabled = true;
    }
  }

  function showAnswer(a: AnswerView | SummaryView): void {
    // A model can end its turn at once (or with blank lines only): say so rather than show nothing.
    output.replaceChildren(a.text.trim() === '' && !a.stopped ? emptyAnswer() : renderMarkdown(a.text));
    output.dataset.state = 'done';
    const given = 'sources' in a ? a.sources : a.sections;
    ctx.chips(a.citations.length > 0 ? a.citations : given, chips);
    if ('grounded' in a && !a.grounded) step('Nothing on this page seemed relevant to the question.');
    else if (a.stopped) step('Stopped.');
    else step('');
  }

  summarize.addEventListener('click', () =>
    void run(async (signal) => {
      await ensurePageIndexed(ctx.client, { force: true, onStep: step, signal });
      step('Summarizing…');
      const s = await ctx.client.call({ type: 'assistant.summarize', target: { page: true } }, { ...signalOpt(signal), onProgress });
      showAnswer(s);
    }),
  );

  const ask = (): void => {
    const question = input.value.trim();
    if (question === '') {
      input.focus();
      return;
    }
    void run(async (signal) => {
      await ensurePageIndexed(ctx.client, { onStep: step, signal });
      step('Thinking…');
      const a = await ctx.client.call({ type: 'assistant.ask', question, scope: 'page' }, { ...signalOpt(signal), onProgress });
      showAnswer(a);
    });
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    ask();
  });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      ask();
    }
  });

  addToLibrary.addEventListener('click', () =>
    void run(async (signal) => {
      const cap = await ensurePageIndexed(ctx.client, { onStep: step, signal });
      step('Adding the page to the library…');
      const r = await ctx.client.call({ type: 'library.addPage' }, { ...signalOpt(signal), onProgress });
      const what = r.status === 'unchanged' ? 'is already in' : r.status === 'replaced' ? 'was updated in' : 'was added to';
      output.dataset.state = 'done';
      step('');
      output.replaceChildren(h('p', { class: 'ok', text: `“${cap.title || cap.url}” ${what} your library (${r.chunks} passage${r.chunks === 1 ? '' : 's'}).` }));
    }),
  );

  stop.addEventListener('click', () => running?.abort());

  return {
    prefillFromSelection(cap: PageCapture): void {
      ctx.showTab('page');
      const quoted = cap.text.length > MAX_QUOTED ? `${cap.text.slice(0, MAX_QUOTED)}…` : cap.text;
      input.value = `What does the page say about this passage: “${quoted}”?`;
      step(`Selection from “${cap.title || cap.url}”: edit the question and press Ask.`);
      input.focus();
      input.setSelectionRange(input.value.length, input.value.length);
    },
  };
}
