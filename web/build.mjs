// build.mjs — bundles the web pages and writes them as one C file for the veltrix binary.
//
// Usage: node build.mjs OUT.c
// esbuild bundles src/player.js, src/admin.js and src/board.js (with their CSS, Leaflet's
// included) into content-hashed files; the three HTML pages refer to those names. Every
// file is gzipped here (level 9) so the server sends the precompressed bytes when the
// client accepts gzip. The C file holds a table of struct web_asset (src/api_int.h).
// Invariants: hashed names are immutable (a change gives a new name); the pages
// themselves are not hashed and are served with no-cache. The player app's first load
// (its page, script and style, compressed) must stay within BUDGET bytes: the build fails
// otherwise.
import * as esbuild from 'esbuild';
import { gzipSync } from 'node:zlib';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync, rmSync } from 'node:fs';
import { dirname, basename, join } from 'node:path';

const BUDGET = 150 * 1024;
const out = process.argv[2];
if (!out) { console.error('usage: node build.mjs OUT.c'); process.exit(2); }
const here = dirname(new URL(import.meta.url).pathname);
const dist = join(here, 'dist');
rmSync(dist, { recursive: true, force: true });

const res = await esbuild.build({
  absWorkingDir: here,
  entryPoints: ['src/player.js', 'src/admin.js', 'src/board.js'],
  bundle: true, minify: true, format: 'esm', splitting: true, target: ['es2020'],
  outdir: join(dist, 'assets'), entryNames: '[name]-[hash]', assetNames: '[name]-[hash]', chunkNames: '[name]-[hash]',
  loader: { '.png': 'file', '.svg': 'file' }, metafile: true, write: true, logLevel: 'warning',
  legalComments: 'none',
});

// entry name -> {js, css} public paths
const entries = {};
for (const [file, o] of Object.entries(res.metafile.outputs)) {
  if (!o.entryPoint) continue;
  const name = basename(o.entryPoint, '.js');
  // The chunks it imports statically load with it (preloaded); a first load also fetches
  // what it imports on demand at start (the game), but not the camera's QR decoder.
  const eager = o.imports.filter(i => i.kind === 'import-statement').map(i => '/assets/' + basename(i.path));
  const firstLoad = new Set();
  const walk = f => {
    for (const i of res.metafile.outputs[f].imports) {
      if (i.external || firstLoad.has(i.path)) continue;
      if (i.kind === 'dynamic-import' && Object.keys(res.metafile.outputs[i.path].inputs).some(k => k.endsWith('camera.js'))) continue;
      firstLoad.add(i.path); walk(i.path);
    }
  };
  walk(file);
  entries[name] = { js: '/assets/' + basename(file), css: o.cssBundle ? '/assets/' + basename(o.cssBundle) : null, eager,
    firstLoad: [...firstLoad].map(f => '/assets/' + basename(f)) };
}

const TYPES = { js: 'text/javascript; charset=utf-8', css: 'text/css; charset=utf-8',
  html: 'text/html; charset=utf-8', png: 'image/png', svg: 'image/svg+xml' };
const pages = {
  '/': ['player', 'Veltrix — treasure hunt'],
  '/admin': ['admin', 'Veltrix — organizer console'],
  '/board': ['board', 'Veltrix — venue screen'],
};
const assets = [];
for (const [path, [name, title]] of Object.entries(pages)) {
  const e = entries[name];
  const html = `<!doctype html><html lang="en"><head><meta charset="utf-8">` +
    `<meta name="viewport" content="width=device-width, initial-scale=1">` +
    `<title>${title}</title><link rel="icon" href="data:,">` + (e.css ? `<link rel="stylesheet" href="${e.css}">` : '') +
    e.eager.map(c => `<link rel="modulepreload" href="${c}">`).join('') +
    `<script type="module" src="${e.js}"></script></head><body class="page-${name}">` +
    `<noscript>This page needs JavaScript.</noscript></body></html>\n`;
  assets.push({ name: path, type: TYPES.html, body: Buffer.from(html), immutable: 0 });
}
for (const file of Object.keys(res.metafile.outputs)) {
  if (file.endsWith('.map')) continue;
  const ext = file.split('.').pop();
  assets.push({ name: '/assets/' + basename(file), type: TYPES[ext] || 'application/octet-stream',
    body: readFileSync(join(here, file)), immutable: 1 });
}
for (const a of assets) {
  // Text only: images are compressed already (an empty gz means: always send as is).
  a.gz = /^(text\/|image\/svg)/.test(a.type) ? gzipSync(a.body, { level: 9 }) : Buffer.alloc(0);
  a.etag = createHash('sha256').update(a.body).digest('hex').slice(0, 32);
}

const gz = n => assets.find(a => a.name === n).gz.length || assets.find(a => a.name === n).body.length;
const first = gz('/') + gz(entries.player.js) + (entries.player.css ? gz(entries.player.css) : 0) +
  entries.player.firstLoad.reduce((n, c) => n + gz(c), 0);
for (const a of assets) console.log(`web: ${a.name} ${a.body.length} B, ${a.gz.length} B gzip`);
console.log(`web: player app first load ${first} B compressed (budget ${BUDGET} B)`);
if (first > BUDGET) { console.error('web: over budget'); process.exit(1); }

const bytes = b => { let s = ''; for (let i = 0; i < b.length; i++) s += b[i] + (i % 24 === 23 ? ',\n' : ','); return s; };
let c = '/* Generated by web/build.mjs from web/src: do not edit, do not commit. */\n#include "api_int.h"\n\n';
assets.forEach((a, i) => {
  c += `static const unsigned char a${i}[] = {${bytes(a.body)}0};\n`;
  c += `static const unsigned char g${i}[] = {${bytes(a.gz)}0};\n`;
});
c += 'const struct web_asset web_assets[] = {\n';
assets.forEach((a, i) => {
  c += `    {${JSON.stringify(a.name)}, ${JSON.stringify(a.type)}, a${i}, ${a.body.length}, g${i}, ${a.gz.length}, ${a.immutable}, "\\"${a.etag}\\"", "\\"${a.etag}-gz\\""},\n`;
});
c += '};\nconst size_t web_assets_n = sizeof web_assets / sizeof web_assets[0];\n';
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out + '.tmp', c);
(await import('node:fs')).renameSync(out + '.tmp', out);
