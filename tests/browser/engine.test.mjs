// The Llama engine compiled to wasm32 inside the extension's service worker, on WebGPU (SwiftShader
// here): the tiny random model (real GGUF format) gives the same greedy tokens as the native `hearth`
// CLI on the same prompt, and SmolLM2 from the real GGUF generates a few tokens.
//
// Needs `make extension` (which ships both models in dist/) and the release CLI (`make release`).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { REPO, launch, rpc } from './harness.mjs';

let h;
let page;

before(async () => {
  h = await launch();
  page = await h.ctx.newPage();
  await page.goto(`chrome-extension://${h.extId}/sidepanel.html`);
});

after(async () => {
  await h?.close();
});

/** Native greedy generation through the CLI: the reference the browser must reproduce. */
function native(model, prompt, maxTokens, sampling = ['--greedy']) {
  const bin = join(REPO, 'target', 'release', 'hearth');
  assert.ok(existsSync(bin), `${bin} missing: run make release`);
  const out = execFileSync(bin, ['generate', '--model', model, '--prompt', prompt, '--max-tokens', String(maxTokens), ...sampling, '--json'], {
    env: { ...process.env, XDG_RUNTIME_DIR: '/tmp' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return JSON.parse(out.toString());
}

test('the tiny model generates the same tokens in the service worker as natively', async () => {
  const prompt = 'Once upon a time';
  const want = native(join(REPO, 'tests', 'fixtures', 'tiny', 'tiny-llama.gguf'), prompt, 12);
  const answer = await rpc(page, { type: 'model.generate', model: 'test-tiny', prompt, max_tokens: 12 }, 240_000);
  assert.equal(answer.kind, 'result', `model.generate failed: ${answer.error}`);
  console.log(`# browser: ${JSON.stringify(answer.value.tokens)}\n# native:  ${JSON.stringify(want.tokens)}`);
  assert.deepEqual(answer.value.prompt_tokens, want.prompt_tokens, 'same tokenizer in wasm');
  assert.ok(want.tokens.length > 0);
  assert.deepEqual(answer.value.tokens, want.tokens, 'same greedy tokens on WebGPU as natively');
  assert.equal(answer.value.text, want.text);
});

test('seeded sampling draws the same tokens in the service worker as natively', async () => {
  const prompt = 'In a small village';
  const want = native(join(REPO, 'tests', 'fixtures', 'tiny', 'tiny-llama.gguf'), prompt, 12, [
    '--temperature', '10', '--top-k', '0', '--top-p', '1', '--seed', '7',
  ]);
  // A hot temperature: the tiny random model is otherwise too peaked for the draws to vary.
  const req = { type: 'model.generate', model: 'test-tiny', prompt, max_tokens: 12, temperature: 10, top_k: 0, top_p: 1, seed: 7 };
  const answer = await rpc(page, req, 240_000);
  assert.equal(answer.kind, 'result', `model.generate failed: ${answer.error}`);
  console.log(`# sampled, browser: ${JSON.stringify(answer.value.tokens)}\n# sampled, native:  ${JSON.stringify(want.tokens)}`);
  assert.ok(new Set(want.tokens).size > 3, 'sampling explores several tokens');
  assert.deepEqual(answer.value.tokens, want.tokens);
});

test('a bad generate request is rejected by the schema check', async () => {
  const answer = await rpc(page, { type: 'model.generate', model: '../../etc/passwd', prompt: 'x' }, 5_000).catch((e) => ({
    kind: 'no answer',
    error: String(e),
  }));
  assert.notEqual(answer.kind, 'result', 'an unknown model must not be loaded');
});

test('SmolLM2 from the real GGUF generates a few tokens in the service worker', async () => {
  const prompt = 'The capital of France is';
  const answer = await rpc(page, { type: 'model.generate', model: 'default', prompt, max_tokens: 3 }, 540_000);
  assert.equal(answer.kind, 'result', `model.generate failed: ${answer.error}`);
  console.log(`# SmolLM2 in the browser: ${JSON.stringify(prompt + answer.value.text)} ${JSON.stringify(answer.value.tokens)}`);
  assert.equal(answer.value.tokens.length, 3);
  assert.ok(answer.value.text.trim().length > 0);
});

test('the bench runs in the service worker and reports tok/s (SwiftShader: a smoke test)', async () => {
  // HEARTH_BROWSER_BENCH=llama-3.2-1b times the real shapes (minutes per token on SwiftShader; use a
  // browser with a real GPU for figures).
  const shape = process.env.HEARTH_BROWSER_BENCH ?? 'tiny';
  const req = { type: 'model.bench', shape, prefill: [64], depths: [1, 64], decode_tokens: 8 };
  const answer = await rpc(page, req, 30 * 60_000);
  assert.equal(answer.kind, 'result', `model.bench failed: ${answer.error}`);
  const r = answer.value;
  console.log(`# browser bench (${shape}): ${JSON.stringify({ prefill: r.prefill, decode: r.decode, gpu_bytes: r.gpu_bytes, load_s: r.load_s })}`);
  assert.deepEqual(r.prefill.map((p) => p.tokens), [64]);
  assert.deepEqual(r.decode.map((d) => d.depth), [1, 64]);
  for (const row of [...r.prefill, ...r.decode]) assert.ok(Number.isFinite(row.tok_s) && row.tok_s > 0, JSON.stringify(row));
  const refused = await rpc(page, { ...req, decode_tokens: 1 << 20 }, 5_000).catch((e) => ({ kind: 'timeout', error: String(e) }));
  assert.notEqual(refused.kind, 'result', 'an oversized bench request is refused');
});
