// The Models tab in Chromium: a Hearth pack folder is copied into OPFS with every file's sha256
// checked, listed, and chosen as the answering model (the worker loads it from OPFS, where the
// Rust loader checks the sums again); a pack with one flipped byte is refused, naming the file,
// and leaves nothing behind. A Hugging Face folder (the tiny sharded bf16 Llama-3 fixture) is
// converted in the browser's convert worker into the very pack `hearth convert` makes natively,
// listed, and chosen; one with a damaged safetensors header or a missing shard fails with a clear
// error and leaves nothing in OPFS; one that claims to be Llama-3.2-1B-Instruct but is not is refused.
//
// The packs are made by the release CLI (`make test` builds it first):
// `hearth convert --model tests/fixtures/tiny/tiny-llama.gguf --out <tmp>/tiny-pack`, and the same
// for the Hugging Face fixture, to compare with what the browser writes.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';

import { REPO, SCREENSHOTS, isAllowedUrl, launch, replaceInCopy, rpc } from './harness.mjs';

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
  // Hugging Face folders: the fixture, and what `hearth convert` makes of it natively.
  const hf = join(REPO, 'tests/fixtures/tiny/tiny-llama3-hf');
  cpSync(hf, join(packs, 'hf-folder'), { recursive: true });
  execFileSync(HEARTH, ['convert', '--model', hf, '--out', join(packs, 'hf-native-pack')], { stdio: 'inherit' });
  // A shard whose JSON header is damaged, a folder missing a shard, and one that claims a name it
  // does not match.
  cpSync(hf, join(packs, 'hf-bad-header'), { recursive: true });
  const shard = join(packs, 'hf-bad-header', 'model-00001-of-00002.safetensors');
  const sb = readFileSync(shard);
  sb[20] = '!'.charCodeAt(0);
  writeFileSync(shard, sb);
  cpSync(hf, join(packs, 'hf-missing-shard'), { recursive: true });
  rmSync(join(packs, 'hf-missing-shard', 'model-00002-of-00002.safetensors'));
  cpSync(hf, join(packs, 'Llama-3.2-1B-Instruct'), { recursive: true });
  // A model Hearth's manifests list with sha256s: the test copy's known-models.json gains the
  // fixture under the name `tiny-known-hf`, its files' real sizes and hashes. One copy of the
  // folder is intact; in the other one byte of tensor data (not the header) is flipped, which only
  // the hash check can see.
  cpSync(hf, join(packs, 'tiny-known-hf'), { recursive: true });
  cpSync(hf, join(packs, 'flipped', 'tiny-known-hf'), { recursive: true });
  const data = join(packs, 'flipped', 'tiny-known-hf', 'model-00002-of-00002.safetensors');
  const db = readFileSync(data);
  db[db.length - 7] ^= 0x40;
  writeFileSync(data, db);
  const knownEntry = {
    name: 'tiny-known-hf',
    claims: ['tiny-known-hf'],
    hf_config: JSON.parse(readFileSync(join(hf, 'config.json'), 'utf8')),
    files: readdirSync(hf).sort().map((f) => {
      const bytes = readFileSync(join(hf, f));
      return { path: f, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
    }),
  };
  const prepare = (dir) => {
    const known = JSON.parse(readFileSync(join(dir, 'models', 'known-models.json'), 'utf8'));
    replaceInCopy(dir, 'models/known-models.json', JSON.stringify([...known, knownEntry]));
  };

  h = await launch({ prepare });
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

async function opfsModels() {
  return panel.evaluate(async () => {
    const root = await navigator.storage.getDirectory();
    const models = await root.getDirectoryHandle('models', { create: true });
    const names = [];
    for await (const [name] of models.entries()) names.push(name);
    return names;
  });
}

/** Imports `dir`, waits for the import to end, and returns the message and the phases shown. */
async function importAndWatch(dir) {
  await panel.evaluate(() => {
    const status = document.querySelector('[data-testid=models-import-status]');
    window.__phases = [];
    window.__phaseObserver?.disconnect();
    window.__phaseObserver = new MutationObserver(() => {
      const s = status.dataset.state;
      const bar = document.querySelector('[data-testid=models-import-progress]');
      if (window.__phases.at(-1)?.state !== s) window.__phases.push({ state: s, max: bar.max });
    });
    window.__phaseObserver.observe(status, { attributes: true, attributeFilter: ['data-state'] });
  });
  await importFolder(dir);
  await panel.waitForFunction(
    () => ['done', 'error'].includes(document.querySelector('[data-testid=models-import-status]')?.dataset.state ?? '') &&
      (document.querySelector('[data-testid=models-import-message]')?.textContent ?? '') !== '',
    null,
    { timeout: 5 * MINUTE },
  );
  return { message: await message(), phases: await panel.evaluate(() => window.__phases.map((p) => p.state)) };
}

/** sha256 (hex) of each file in OPFS `models/<id>/`. */
async function opfsHashes(id) {
  return panel.evaluate(async (id) => {
    const root = await navigator.storage.getDirectory();
    const dir = await (await root.getDirectoryHandle('models')).getDirectoryHandle(id);
    const out = {};
    for await (const [name, handle] of dir.entries()) {
      const bytes = await (await handle.getFile()).arrayBuffer();
      out[name] = [...new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
    }
    return out;
  }, id);
}

test('a Hugging Face folder with a damaged safetensors header fails clearly and leaves nothing in OPFS', async () => {
  const { message: m } = await importAndWatch(join(packs, 'hf-bad-header'));
  console.log(`# ${m}`);
  assert.match(m, /Could not import/);
  assert.match(m, /model-00001-of-00002\.safetensors/, m);
  assert.match(m, /safetensors/);
  assert.equal(await panel.locator('[data-testid=model-row][data-id=hf-bad-header]').count(), 0);
  assert.ok(!(await opfsModels()).includes('hf-bad-header'), 'a partial folder was left in OPFS');
});

test('a Hugging Face folder missing a shard fails clearly and leaves nothing in OPFS', async () => {
  const { message: m } = await importAndWatch(join(packs, 'hf-missing-shard'));
  console.log(`# ${m}`);
  assert.match(m, /no file model-00002-of-00002\.safetensors/, m);
  assert.ok(!(await opfsModels()).includes('hf-missing-shard'), 'a partial folder was left in OPFS');
});

test('a known model with a flipped byte fails the sha256 check against the manifest, leaving nothing', async () => {
  const { message: m } = await importAndWatch(join(packs, 'flipped', 'tiny-known-hf'));
  console.log(`# ${m}`);
  assert.match(m, /model-00002-of-00002\.safetensors does not match tiny-known-hf's manifest \(sha256 [0-9a-f]{64}, expected [0-9a-f]{64}\)/, m);
  assert.ok(!(await opfsModels()).includes('tiny-known-hf'), 'a partial folder was left in OPFS');
});

test('a known model whose files match the manifest imports, saying every file was verified', async () => {
  const { message: m } = await importAndWatch(join(packs, 'tiny-known-hf'));
  console.log(`# ${m}`);
  const n = readdirSync(join(packs, 'tiny-known-hf')).length;
  assert.match(m, new RegExp(`its config matches tiny-known-hf; ${n} of ${n} files match the sha256 in Hearth's manifest`), m);
  await panel.locator('[data-testid=model-row][data-id=tiny-known-hf]').waitFor();
});

test('a folder named Llama-3.2-1B-Instruct whose config.json is not that model is refused', async () => {
  const { message: m } = await importAndWatch(join(packs, 'Llama-3.2-1B-Instruct'));
  console.log(`# ${m}`);
  assert.match(m, /hidden_size = 64, but Llama-3\.2-1B-Instruct has hidden_size = 2048/, m);
  assert.ok(!(await opfsModels()).includes('llama-3.2-1b-instruct'));
});

test('a Hugging Face folder is converted in the browser into the pack hearth convert makes, and answers', async () => {
  const { message: m, phases } = await importAndWatch(join(packs, 'hf-folder'));
  assert.match(m, /Converted hf-folder to a Hearth pack \(q4/, m);
  for (const phase of ['hashing', 'quantising', 'writing']) assert.ok(phases.includes(phase), `no ${phase} progress: ${phases}`);
  const row = panel.locator('[data-testid=model-row][data-id=hf-folder]');
  await row.waitFor();
  // Byte for byte what the native converter wrote: same weights, tokenizer, config and manifest.
  const native = join(packs, 'hf-native-pack');
  const want = Object.fromEntries(
    // (less the native verification stamp `.hearth-verified.json`, which is not part of the pack)
    readdirSync(native)
      .filter((f) => !f.startsWith('.'))
      .map((f) => [f, createHash('sha256').update(readFileSync(join(native, f))).digest('hex')]),
  );
  assert.deepEqual(await opfsHashes('hf-folder'), want);

  await row.locator('[data-testid=model-select]').click();
  await panel.waitForFunction(
    () => document.querySelector('[data-testid=model-row][data-id=hf-folder]')?.getAttribute('data-active') === 'true',
    null,
    { timeout: 5 * MINUTE },
  );
  mkdirSync(SCREENSHOTS, { recursive: true });
  await panel.screenshot({ path: join(SCREENSHOTS, 'models-hf-converted.png'), fullPage: true });
  const status = await rpc(panel, { type: 'status' });
  assert.equal(status.value.generator.model, 'hf-folder');
  assert.equal(status.value.generator.state, 'ready', JSON.stringify(status.value.generator));

  // It answers: a one-paragraph note in the library, and a question the note answers.
  const note = join(packs, 'lighthouse-note.md');
  writeFileSync(note, '# The lighthouse\n\nThe keeper of the Varnholm lighthouse is Ingrid Solberg. She lights the lamp every evening at dusk.\n');
  await panel.click('[data-testid=tab-library]');
  await panel.setInputFiles('[data-testid=library-file-input]', note);
  await panel.locator('[data-testid=library-row]').first().waitFor({ timeout: 3 * MINUTE });
  const answer = await rpc(panel, { type: 'assistant.ask', question: 'Who is the keeper of the Varnholm lighthouse?', scope: 'library' }, 5 * MINUTE);
  await panel.click('[data-testid=tab-models]');
  assert.equal(answer.kind, 'result', `assistant.ask failed: ${answer.error}`);
  console.log(`# the converted tiny model answered: ${JSON.stringify(answer.value.text.slice(0, 120))}`);
  assert.ok(answer.value.grounded, 'the note was retrieved and the model asked');
  assert.ok(answer.value.prompt_tokens > 0, 'the prompt was tokenized by the converted model');
});

test('a pack with a flipped byte is refused, naming the file, and leaves nothing in OPFS', async () => {
  await importFolder(join(packs, 'bad-pack'));
  await panel.waitForFunction(() => /model\.safetensors/.test(document.querySelector('[data-testid=models-import-message]')?.textContent ?? ''), null, { timeout: 2 * MINUTE });
  assert.match(await message(), /sha256|checksum|does not match/i);
  assert.equal(await panel.locator('[data-testid=model-row][data-id=bad-pack]').count(), 0);
  const left = await opfsModels();
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
