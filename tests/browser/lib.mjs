// lib.mjs — what the browser tests share: the veltrix server under test, the HTTP API from
// node, Chromium pages that record console errors, and the tiny "N passed, N failed"
// harness of the other suites.
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const ART = join(ROOT, 'build', 'browser');
export const KEY = 'browser-test-admin-key';
export const requireWeb = createRequire(join(ROOT, 'web', 'package.json'));
export const sleep = ms => new Promise(r => setTimeout(r, ms));

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer().listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => res(p)); });
    s.on('error', rej);
  });
}

// One veltrix server: its own data directory and port, kept across restart().
export class Server {
  constructor(bin) { this.bin = bin; this.dir = mkdtempSync(join(tmpdir(), 'vx-browser-')); this.log = ''; }
  async start() {
    if (!this.port) this.port = await freePort();
    this.url = `http://127.0.0.1:${this.port}`;
    this.proc = spawn(this.bin, ['serve', '--listen', `127.0.0.1:${this.port}`, '--data', this.dir, '--admin-key', KEY,
      '--demo', '--fsync', 'batch', '--players-per-ip-per-min', '1000'], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc.stderr.on('data', d => { this.log += d; });
    this.exited = new Promise(r => this.proc.on('exit', r));
    for (let i = 0; i < 200; i++) {
      try { if ((await fetch(this.url + '/healthz')).ok) return; } catch { /* not yet */ }
      if (this.proc.exitCode != null) break;
      await sleep(50);
    }
    throw new Error('the server did not start: ' + this.log.slice(-500));
  }
  async stop() { if (this.proc && this.proc.exitCode == null) { this.proc.kill('SIGTERM'); await this.exited; } }
  async destroy() { await this.stop(); rmSync(this.dir, { recursive: true, force: true }); }
  // The JSON API from node: throws on a non-2xx answer.
  async api(method, path, body, token = KEY) {
    const res = await fetch(this.url + path, { method, headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  }
  async player(name) { return this.api('POST', '/v1/players', { display_name: name }, null); }
  async payload(hunt, code) { return (await this.api('GET', `/v1/hunts/${hunt}/codes`)).codes.find(c => c.id === code).payload; }
}

// Pages whose console errors are checked at the end: every error, except the browser's
// "Failed to load resource: ... 4xx" line for an API call (/v1/...) that the page made and
// handled (a refused scan, a chest already taken: answers the page shows to the player).
export const consoleErrors = [];
export async function newPage(browser, { viewport = { width: 375, height: 667 }, networkFailures = false, ...ctxOpts } = {}) {
  const ctx = await browser.newContext({ viewport, ...ctxOpts });
  const page = await ctx.newPage();
  const where = () => page.url();
  page.on('console', m => {
    if (m.type() !== 'error' || networkFailures) return;
    const url = (m.location() && m.location().url) || '';
    if (/Failed to load resource: the server responded with a status of 4\d\d/.test(m.text()) && url.includes('/v1/')) return;
    consoleErrors.push(`${where()}: ${m.text()} (${url})`);
  });
  page.on('pageerror', e => consoleErrors.push(`${where()}: uncaught ${e.message}`));
  return page;
}

export async function joinHunt(page, server, name, hunt) {
  await page.goto(`${server.url}/?hunt=${hunt}`);
  await page.fill('#name', name);
  await page.fill('#hunt', hunt);
  await page.click('#join button');
  await page.waitForSelector('#conn[data-state="live"]');
}

// Clicks the map at the middle of a zone (zones are drawn as path.zone-<id>, not interactive).
export async function walkInto(page, zone) {
  const box = await page.locator(`path.zone-${zone}`).boundingBox();
  await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
  await waitFor(page, z => document.querySelector('#pos').textContent.includes(`Zone ${z}.`), zone);
}

export function assert(cond, msg) { if (!cond) throw new Error(msg); }

export function shotPath(name) { mkdirSync(ART, { recursive: true }); return join(ART, name); }

// page.waitForFunction compiles its predicate in the page, which the pages' CSP forbids
// (no eval): this polls page.evaluate instead.
export async function waitFor(page, fn, arg, timeout = 30000) {
  const end = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > end) throw new Error('waitFor timed out: ' + fn.toString().slice(0, 120));
    await sleep(50);
  }
}
