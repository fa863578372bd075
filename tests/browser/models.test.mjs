// The Models tab in Chromium: a Hearth pack folder is copied into OPFS with every file's sha256
// checked, listed, and chosen as the answering model (the worker loads it from OPFS, where the
// Rust loader checks the sums again); a pack with one flipped byte is refused, naming the file,
// and leaves nothing behind; a Hugging Face folder is refused with the command that converts it.
//
// The pack is the tiny test model converted by the release CLI (`make test` builds it first):
// `hearth convert --model tests/fixtures/tiny/tiny-llama.gguf --out <tmp>/tiny-pack`.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { REPO, SCREENSHOTS, isAllowedUrl, launch } from './harness.mjs';

const HEARTH = join(REPO, 'target', 'release', 'hearth');
const MINUTE = 60_000;

let h;
let panel;
let packs;

before(async () => {
  if (!existsSync(HEARTH)) throw new Error(`${HEARTH} is missing: run \`make release\``);
  packs = mkdtempSync(join(tmpdir(), 'hearth-packs-'));
  const good = join(packs, 'tiny-pack');
  execFileSync(HEARTH, ['convert', '--model', join(REPO, 'tests/fixtures/tiny/tiny-llama.gguf'), '--out', good], { stdio: 'inherit' });
  // The same pack with one byte of its weights flipped.
  const bad = join(packs, 'bad-pack');
  cpSync(good, bad, { recursive: true });
  const weights = join(bad, 'model.safetensors');
  const bytes = readFileSync(weights);
  bytes[bytes.length - 100] ^= 0xff;
  writeFileSync(weights, bytes);
  // A Hugging Face folder (no manifest.json).
  cpSync(join(REPO, 'tests/fixtures/tiny/tiny-llama3-hf'), join(packs, 'hf-folder'), { recursive: true });

  h = await launch();
  panel = await h.ctx.newPage();
  panel.setDefaultTimeout(2 * MINUTE);
  await panel.goto(`chrome-extension://${h.extId}/sidepanel.html`);
  await panel.click('[data-testid=tab-models]');
});

after(async () => {
  await h?.close();
});

async function importFolder(dir) {
  await panel.setInputFiles('[data-testid=models-import-input]', dir);
}

async function message() {
  return (await panel.locator('[data-testid=models-import-message]').textContent()) ?? '';
}

test('a Hugging Face folder is refused with the command that converts it', async () => {
  await importFolder(join(packs, 'hf-folder'));
  await panel.waitForFunction(() => /hearth convert/.test(document.querySelector('[data-testid=models-import-message]')?.textContent ?? ''));
  assert.equal(await panel.locator('[data-testid=model-row][data-id=hf-folder]').count(), 0);
});

test('a pack with a flipped byte is refused, naming the file, and leaves nothing in OPFS', async () => {
  await importFolder(join(packs, 'bad-pack'));
  await panel.waitForFunction(() => /model\.safetensors/.test(document.querySelector('[data-testid=models-import-message]')?.textContent ?? ''), null, { timeout: 2 * MINUTE });
  assert.match(await message(), /sha256|checksum|does not match/i);
  assert.equal(await panel.locator('[data-testid=model-row][data-id=bad-pack]').count(), 0);
  const left = await panel.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const models = await root.getDirectoryHandle('models', { create: true });
    const names = [];
    for await (const [name] of models.entries()) names.push(name);
    return names;
  });
  assert.ok(!left.includes('bad-pack'), `left in OPFS: ${left}`);
});

test('a good pack is copied, verified, listed and answers as the chosen model', async () => {
  await importFolder(join(packs, 'tiny-pack'));
  const row = panel.locator('[data-testid=model-row][data-id=tiny-pack]');
  await row.waitFor({ timeout: 2 * MINUTE });
  await row.locator('[data-testid=model-select]').click();
  await panel.waitForFunction(
    () => document.querySelector('[data-testid=model-row][data-id=tiny-pack]')?.getAttribute('data-active') === 'true',
    null,
    { timeout: 5 * MINUTE },
  );
  mkdirSync(SCREENSHOTS, { recursive: true });
  await panel.screenshot({ path: join(SCREENSHOTS, 'models-imported.png'), fullPage: true });
  // The worker now answers with the pack (loaded from OPFS, checked again by the Rust loader).
  const status = await panel.evaluate(
    () =>
      new Promise((resolve) => {
        const port = chrome.runtime.connect({ name: 'hearth-rpc' });
        port.onMessage.addListener((m) => m.kind === 'result' && resolve(m.value));
        port.postMessage({ id: 1, request: { type: 'status' } });
      }),
  );
  assert.equal(status.generator.model, 'tiny-pack');
  assert.equal(status.generator.state, 'ready', JSON.stringify(status.generator));
});

test('no request left the extension', () => {
  assert.deepEqual(h.requests.filter((r) => !isAllowedUrl(r.url)), []);
});
