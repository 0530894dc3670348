// common.js — what the three pages share: DOM helpers, the HTTP client (every write
// carries an Idempotency-Key and is retried with it after a network error), the player
// session (token kept and refreshed before it expires) and the live stream (reconnects
// with `since`, so no event is missed).
export const $ = (sel, root = document) => root.querySelector(sel);
export const sleep = ms => new Promise(r => setTimeout(r, ms));

// el('button', {class: 'x', onclick: f, text: 'Go'}, child...): never parses HTML.
export function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat()) if (c != null) e.append(c instanceof Node ? c : String(c));
  return e;
}

// A random UUIDv4 (crypto.randomUUID exists only in secure contexts; a venue LAN may be plain http).
export function uuid4() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 15) | 64; b[8] = (b[8] & 63) | 128;
  const h = [...b].map(x => x.toString(16).padStart(2, '0')).join('');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export class ApiError extends Error {
  constructor(status, code, message, retryAfter) {
    super(message); this.status = status; this.code = code; this.retryAfter = retryAfter;
  }
}

// One HTTP request. Answers the parsed JSON body (or text); throws ApiError for a non-2xx
// answer and TypeError (from fetch) when the network failed.
export async function request(method, path, { body, token, key, raw, type } = {}) {
  const headers = {};
  if (token) headers.Authorization = 'Bearer ' + token;
  if (key) headers['Idempotency-Key'] = key;
  let b = body;
  if (body !== undefined && !raw) { headers['Content-Type'] = 'application/json'; b = JSON.stringify(body); }
  if (type) headers['Content-Type'] = type;
  const res = await fetch(path, { method, headers, body: b, cache: 'no-store' });
  const text = await res.text();
  let data = text;
  if ((res.headers.get('Content-Type') || '').startsWith('application/json') && text) data = JSON.parse(text);
  if (!res.ok) {
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || 'http_' + res.status, e.message || res.statusText || 'error',
      Number(res.headers.get('Retry-After')) || 0);
  }
  return data;
}

const transient = e => !(e instanceof ApiError) || [429, 502, 503, 504].includes(e.status);

// A state-changing request: one Idempotency-Key for every attempt, so a retry after a
// lost answer is answered from the first one and never applies twice. Retried after a
// network error, 429 and 503 (after Retry-After) with backoff; opts.auth() gives a fresh
// token for each attempt. onRetry(attempt, error) lets the page say so.
export async function write(method, path, opts = {}, onRetry) {
  const key = uuid4();
  let delay = 400;
  for (let attempt = 1; ; attempt++) {
    try {
      const token = opts.auth ? await opts.auth() : opts.token;
      return await request(method, path, { ...opts, token, key });
    } catch (e) {
      if (!transient(e) || attempt >= 40) throw e;
      if (onRetry) onRetry(attempt, e);
      await sleep(e.retryAfter ? e.retryAfter * 1000 : delay);
      delay = Math.min(delay * 2, 5000);
    }
  }
}

// The player's session: token and refresh token in localStorage under `name`. get() gives
// a token valid for a while yet, refreshing it first when it is near its end; a refresh
// token that was already used (refresh_token_reused) or a revoked session calls
// onLost(message) and the page asks the player to join again.
export class Session {
  constructor(name, onLost) {
    this.name = name; this.onLost = onLost; this.refreshing = null;
    try { this.s = JSON.parse(localStorage.getItem(name)); } catch { this.s = null; }
  }
  get player() { return this.s; }
  save(r) {
    this.s = { player_id: r.player_id || this.s.player_id, display_name: r.display_name || this.s.display_name,
      token: r.token, refresh_token: r.refresh_token, expires_at: Date.now() + r.expires_in * 1000,
      ttl: r.expires_in };
    localStorage.setItem(this.name, JSON.stringify(this.s));
    this.schedule();
  }
  clear() { this.s = null; localStorage.removeItem(this.name); clearTimeout(this.timer); }
  async join(displayName) {
    const r = await write('POST', '/v1/players', { body: { display_name: displayName } });
    this.save(r);
    return r;
  }
  // Refreshes ahead of expiry: at 80% of the lifetime, at least 5 s before the end.
  schedule() {
    clearTimeout(this.timer);
    if (!this.s) return;
    const left = this.s.expires_at - Date.now(), lead = Math.max(5000, this.s.ttl * 200);
    this.timer = setTimeout(() => this.refresh().catch(() => {}), Math.max(0, left - lead));
  }
  async refresh() {
    if (this.refreshing) return this.refreshing;
    const run = async () => {
      // Another tab of this browser may have refreshed meanwhile: its token is the newest.
      const stored = JSON.parse(localStorage.getItem(this.name) || 'null');
      if (stored && this.s && stored.refresh_token !== this.s.refresh_token) { this.s = stored; this.schedule(); return; }
      if (!this.s) throw new ApiError(401, 'unauthorized', 'not joined');
      try {
        this.save(await write('POST', '/v1/sessions/refresh', { body: { refresh_token: this.s.refresh_token } }));
      } catch (e) {
        if (e instanceof ApiError && e.status === 401) this.lost(e);
        throw e;
      }
    };
    const locked = navigator.locks ? () => navigator.locks.request(this.name, run) : run;
    this.refreshing = locked().finally(() => { this.refreshing = null; });
    return this.refreshing;
  }
  lost(e) {
    this.clear();
    this.onLost(e.code === 'refresh_token_reused'
      ? 'Your sign-in was used from somewhere else, so every session was ended for safety. Join again.'
      : 'Your session has ended. Join again.');
  }
  async token() {
    if (!this.s) throw new ApiError(401, 'unauthorized', 'not joined');
    if (this.s.expires_at - Date.now() < 5000) await this.refresh();
    return this.s.token;
  }
  // A player call: on 401 token_expired refreshes once and tries again; 401 otherwise ends the session.
  async call(fn) {
    try { return await fn(() => this.token()); } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      if (e.code === 'token_expired') { await this.refresh(); return fn(() => this.token()); }
      this.lost(e);
      throw e;
    }
  }
}

// The hunt's live stream. onMessage gets every message once: durable events in seq
// order (duplicates from a replay are dropped), positions, leaderboards. Reconnects with
// `since` = the last seq seen; a resync asks the page to reload its state (onResync).
export class Live {
  constructor(hunt, tokenFn, { onMessage, onState, onResync }) {
    Object.assign(this, { hunt, tokenFn, onMessage, onState, onResync });
    this.since = null; this.delay = 250; this.closed = false;
  }
  start(since) { this.since = since; this.connect(); }
  async connect() {
    if (this.closed) return;
    let token;
    try { token = await this.tokenFn(); } catch { return this.retry(); }
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const q = `token=${encodeURIComponent(token)}` + (this.since != null ? `&since=${this.since}` : '');
    const ws = new WebSocket(`${proto}://${location.host}/v1/hunts/${this.hunt}/live?${q}`);
    this.ws = ws;
    ws.onopen = () => { this.delay = 250; this.onState('live'); };
    ws.onmessage = ev => {
      let m;
      try { m = JSON.parse(ev.data); } catch { return; }
      if (m.type === 'resync') { if (m.seq != null) this.since = m.seq; this.onResync(m); return; }
      if (m.seq != null && m.type !== 'leaderboard') {
        if (this.since != null && m.seq <= this.since) return;
        this.since = m.seq;
      }
      this.onMessage(m);
    };
    ws.onclose = () => { if (this.ws === ws) { this.ws = null; this.retry(); } };
  }
  retry() {
    if (this.closed) return;
    this.onState('reconnecting');
    setTimeout(() => this.connect(), this.delay);
    this.delay = Math.min(this.delay * 2, 5000);
  }
  send(m) { if (this.ws && this.ws.readyState === 1) { this.ws.send(JSON.stringify(m)); return true; } return false; }
  stop() { this.closed = true; if (this.ws) this.ws.close(); }
}

export function fmtTime(ms) { return new Date(ms).toLocaleTimeString(); }

// The text of one feed event; names maps player ids to display names.
export function feedText(m, names) {
  const who = id => names.get(id) || 'a player';
  switch (m.type) {
    case 'scan': return `${m.display_name || who(m.player_id)} scanned ${m.code} (+${m.points})`;
    case 'chest_opened': return `${who(m.player_id)} opened chest ${m.chest} in ${m.zone} (+${m.points})`;
    case 'item_collected': return `${who(m.player_id)} collected ${m.item} (${m.remaining} left)`;
    case 'map_published': return `New map published (version ${m.version})`;
    case 'hunt_updated': return 'The organizers updated the hunt';
    default: return `Event ${m.seq}`;
  }
}
