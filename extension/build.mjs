// Bundles the extension into dist/ and zips it for the stores. `make extension` runs the Rust/wasm
// steps first (cargo → wasm-bindgen → wasm-opt into pkg/) and the type check; this script only
// bundles and copies, so it is fast and can run on its own: `node build.mjs`.
//
// One bundle per entry point: the service worker is an ES module (manifest `type: module`, static
// imports only), the side panel a module script, the parse and convert workers module workers (each
// loads its own instance of the engine's wasm), and the content script a classic IIFE because
// `chrome.scripting.executeScript({ files })` injects classic scripts (Readability is bundled in).

import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateRawSync, deflateSync } from 'node:zlib';

const root = dirname(fileURLToPath(import.meta.url));
const dist = join(root, 'dist');
const pkg = join(root, 'pkg');
const zipPath = join(root, 'hearth-extension.zip');

for (const f of ['hearth_wasm.js', 'hearth_wasm_bg.wasm']) {
  if (!existsSync(join(pkg, f))) {
    console.error(`extension/pkg/${f} is missing: run \`make extension\` (it builds the wasm first).`);
    process.exit(1);
  }
}

rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const common = {
  bundle: true,
  target: 'chrome124',
  sourcemap: 'linked',
  logLevel: 'warning',
  legalComments: 'none',
};
await build({
  ...common,
  entryPoints: { background: 'src/background.ts', sidepanel: 'src/sidepanel.ts', parser: 'src/parser.ts', converter: 'src/converter.ts' },
  format: 'esm',
  outdir: dist,
  absWorkingDir: root,
});
await build({
  ...common,
  entryPoints: { content: 'src/content.ts' },
  format: 'iife',
  outdir: dist,
  absWorkingDir: root,
});

// The service worker may not load code at run time: refuse a bundle that kept a dynamic import.
const bg = readFileSync(join(dist, 'background.js'), 'utf8');
if (/\bimport\s*\(/.test(bg)) {
  console.error('dist/background.js contains a dynamic import(), which service workers reject.');
  process.exit(1);
}

copyFileSync(join(root, 'manifest.json'), join(dist, 'manifest.json'));
for (const f of readdirSync(join(root, 'static'))) copyFileSync(join(root, 'static', f), join(dist, f));
copyFileSync(join(pkg, 'hearth_wasm_bg.wasm'), join(dist, 'hearth_wasm_bg.wasm'));


// ---- Models: the embedded default ships in the package; the tiny test models (random, fixed-sentence) only in dist/ ----

const modelCache = process.env.HEARTH_MODELS ?? join(process.env.HOME ?? '', '.cache', 'hearth', 'models');
const smollm2 = join(modelCache, 'smollm2-135m-instruct', 'SmolLM2-135M-Instruct.Q4_1.gguf');
if (!existsSync(smollm2)) {
  console.error(`${smollm2} is missing: run \`make models\` first.`);
  process.exit(1);
}
mkdirSync(join(dist, 'models', 'test'), { recursive: true });
copyFileSync(smollm2, join(dist, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf'));
for (const f of ['tiny-llama.gguf', 'tiny-words.gguf']) copyFileSync(join(root, '..', 'tests', 'fixtures', 'tiny', f), join(dist, 'models', 'test', f));

// The sentence encoder (MiniLM) the worker embeds with and whose tokenizer the parse worker counts
// tokens with: copied with its relative paths into dist/models/all-minilm-l6-v2/.
const ENCODER = 'all-minilm-l6-v2';
const ENCODER_FILES = { required: ['config.json', 'model.safetensors', 'tokenizer.json'], optional: ['modules.json', 'sentence_bert_config.json', '1_Pooling/config.json'] };
const encoderDir = join(modelCache, ENCODER);
const missing = ENCODER_FILES.required.filter((f) => !existsSync(join(encoderDir, f)));
if (missing.length > 0) {
  console.error(`${encoderDir} lacks ${missing.join(', ')}: run \`make models\` first (or set HEARTH_MODELS).`);
  process.exit(1);
}
for (const f of [...ENCODER_FILES.required, ...ENCODER_FILES.optional]) {
  if (!existsSync(join(encoderDir, f))) continue;
  mkdirSync(dirname(join(dist, 'models', ENCODER, f)), { recursive: true });
  copyFileSync(join(encoderDir, f), join(dist, 'models', ENCODER, f));
}
// The packaged models' sizes, for the Models tab (a HEAD request on chrome-extension: has no length).
writeFileSync(
  join(dist, 'models', 'sizes.json'),
  JSON.stringify({
    'models/SmolLM2-135M-Instruct.Q4_1.gguf': statSync(join(dist, 'models', 'SmolLM2-135M-Instruct.Q4_1.gguf')).size,
    'models/test/tiny-llama.gguf': statSync(join(dist, 'models', 'test', 'tiny-llama.gguf')).size,
    'models/test/tiny-words.gguf': statSync(join(dist, 'models', 'test', 'tiny-words.gguf')).size,
  }),
);
// The models manifest/ describes by their Hugging Face config.json (e.g. Llama-3.2-1B-Instruct, which
// users bring themselves): the convert worker checks a folder that claims to be one of them.
const manifests = join(root, '..', 'manifest');
const known = readdirSync(manifests)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => JSON.parse(readFileSync(join(manifests, f), 'utf8')))
  .filter((m) => m.hf_config !== undefined)
  .map((m) => ({
    name: m.display_name,
    claims: m.claims,
    hf_config: m.hf_config,
    files: m.files.map((f) => ({ path: f.path, size: f.size ?? null, sha256: f.sha256 ?? null })),
  }));
writeFileSync(join(dist, 'models', 'known-models.json'), JSON.stringify(known));
/** Test-only files that stay out of the store package. */
const TEST_ONLY = join('models', 'test');

// ---- A store-ready zip of dist/ (stored paths relative to dist/, no directory entries needed) ----

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function files(dir) {
  return readdirSync(dir)
    .sort()
    .flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
}

function zip(srcDir, out) {
  const locals = [];
  const centrals = [];
  let offset = 0;
  // A fixed timestamp (1980-01-01) keeps the zip reproducible.
  const [time, date] = [0, (0 << 9) | (1 << 5) | 1];
  for (const path of files(srcDir).filter((f) => !relative(srcDir, f).startsWith(TEST_ONLY))) {
    const name = Buffer.from(relative(srcDir, path).split('\\').join('/'));
    const data = readFileSync(path);
    const deflated = deflateRawSync(data, { level: 9 });
    const [method, body] = deflated.length < data.length ? [8, deflated] : [0, data];
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(time, 10);
    local.writeUInt16LE(date, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(time, 12);
    central.writeUInt16LE(date, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(name.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(centrals.length / 2, 8);
  end.writeUInt16LE(centrals.length / 2, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  writeFileSync(out, Buffer.concat([...locals, cd, end]));
}

// ---- Icons: drawn here (a flame on a rounded square), so no binary files live in the repository ----

function png(size, pixel) {
  const raw = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      // 4×4 samples per pixel for smooth edges.
      let [r, g, b, a] = [0, 0, 0, 0];
      for (let sy = 0; sy < 4; sy++) {
        for (let sx = 0; sx < 4; sx++) {
          const c = pixel((x + (sx + 0.5) / 4) / size, (y + (sy + 0.5) / 4) / size);
          if (c === null) continue;
          r += c[0]; g += c[1]; b += c[2]; a += 255;
        }
      }
      const o = y * (size * 4 + 1) + 1 + x * 4;
      const n = a / 255;
      if (n > 0) [raw[o], raw[o + 1], raw[o + 2]] = [r / n, g / n, b / n].map(Math.round);
      raw[o + 3] = Math.round(a / 16);
    }
  }
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA
  return Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(raw)), chunk('IEND', Buffer.alloc(0))]);
}

function icon(x, y) {
  const r = 0.2; // corner radius of the tile
  const dx = Math.max(r - x, 0, x - (1 - r));
  const dy = Math.max(r - y, 0, y - (1 - r));
  if (dx * dx + dy * dy > r * r) return null;
  // A flame: a round bottom joined to a point at the top.
  const [cx, cy, rad] = [0.5, 0.62, 0.22];
  const inRound = (x - cx) ** 2 + (y - cy) ** 2 <= rad * rad;
  const t = (cy - y) / (cy - 0.14); // 0 at the circle's centre, 1 at the tip
  const inPoint = t >= 0 && t <= 1 && Math.abs(x - cx + 0.06 * Math.sin(t * Math.PI)) <= rad * (1 - t) ** 1.3;
  if (inRound || inPoint) return [255, 214, 150];
  return [184, 71, 47];
}

for (const size of [16, 32, 48, 128]) writeFileSync(join(dist, `icon${size}.png`), png(size, icon));

zip(dist, zipPath);

const sizes = files(dist).map((f) => `  ${relative(dist, f).padEnd(44)} ${(statSync(f).size / 1024).toFixed(1).padStart(8)} KiB`);
console.log(`extension/dist:\n${sizes.join('\n')}`);
console.log(`extension/hearth-extension.zip: ${(statSync(zipPath).size / 1024).toFixed(1)} KiB`);
