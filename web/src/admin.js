// admin.js — the organizer console (GET /admin): the admin key (typed once, kept for this
// tab only in sessionStorage), a hunt's definition as a form and as JSON (errors shown at
// the field), map tiles uploaded from a folder and published, the QR sheet to print, and
// the live figures (stats, leaderboard, /metrics).
import './common.css';
import './admin.css';
import { $, el, write, request, ApiError } from './common.js';

const KEY = 'vx.adminKey';
const st = { hunt: null, def: null, prev: null, timer: null };
const adminKey = () => sessionStorage.getItem(KEY);
const admin = (method, path, opts = {}) => request(method, path, { ...opts, token: adminKey() });
const adminWrite = (method, path, opts = {}) => write(method, path, { ...opts, token: adminKey() });

function keyView(message) {
  document.body.replaceChildren(el('main', { class: 'admin narrow' },
    el('h1', { text: 'Veltrix organizer console' }),
    message ? el('p', { class: 'notice', role: 'alert', text: message }) : null,
    el('form', { id: 'key-form', onsubmit: ev => { ev.preventDefault(); sessionStorage.setItem(KEY, ev.target.key.value.trim()); mainView(); } },
      el('label', { for: 'key', text: 'Admin key' }),
      el('input', { id: 'key', name: 'key', type: 'password', required: true, autocomplete: 'off' }),
      el('p', { class: 'muted', text: 'Kept for this browser tab only; closing the tab forgets it.' }),
      el('button', { type: 'submit', text: 'Continue' }))));
}

const field = (id, label, attrs = {}) => el('div', { class: 'field' },
  el('label', { for: id, text: label }), el('input', { id, name: id, ...attrs }),
  el('p', { class: 'field-error error', id: id + '-error', role: 'alert' }));

function mainView() {
  document.body.replaceChildren(
    el('header', { class: 'admin-head' }, el('h1', { text: 'Organizer console' }),
      el('button', { type: 'button', class: 'link', text: 'Forget the key', onclick: () => { sessionStorage.removeItem(KEY); keyView(); } })),
    el('main', { class: 'admin' },
      el('section', { 'aria-labelledby': 'h-hunt' },
        el('h2', { id: 'h-hunt', text: 'Hunt' }),
        el('form', { id: 'load', class: 'row', onsubmit: onLoad },
          el('label', { for: 'hunt-id', class: 'sr-only', text: 'Hunt id' }),
          el('input', { id: 'hunt-id', name: 'id', placeholder: 'hunt id, e.g. lisbon-2026', required: true, pattern: '[a-z0-9_\\-]{1,64}' }),
          el('button', { type: 'submit', text: 'Open or create' })),
        el('p', { id: 'hunt-status', role: 'status' })),
      el('section', { id: 'editor', 'aria-labelledby': 'h-def', hidden: true },
        el('h2', { id: 'h-def', text: 'Definition' }),
        el('form', { id: 'def', onsubmit: onSave, novalidate: true },
          field('f-name', 'Name', { required: true }),
          el('div', { class: 'two' }, field('f-starts', 'Starts at (UTC, optional)', { placeholder: '2026-12-01T09:00:00.000Z' }),
            field('f-ends', 'Ends at (UTC, optional)', { placeholder: '2026-12-03T09:00:00.000Z' })),
          el('div', { class: 'two' }, field('f-width', 'Map width (cells)', { type: 'number', min: 1, max: 4096 }),
            field('f-height', 'Map height (cells)', { type: 'number', min: 1, max: 4096 })),
          el('label', { for: 'f-json', text: 'JSON (codes, items, zones: everything above too)' }),
          el('textarea', { id: 'f-json', name: 'json', rows: 18, spellcheck: 'false' }),
          el('p', { class: 'field-error error', id: 'f-json-error', role: 'alert' }),
          el('button', { type: 'submit', text: 'Save the hunt' }),
          el('p', { id: 'save-status', role: 'status' }))),
      el('section', { id: 'maps', 'aria-labelledby': 'h-map', hidden: true },
        el('h2', { id: 'h-map', text: 'Map tiles' }),
        el('p', { class: 'muted', text: 'Choose a folder laid out as x/y.png (or .svg, .jpg, .webp): one 256×256 tile per map cell. Uploads go to the draft; players see them when you publish.' }),
        el('label', { for: 'tiles', text: 'Tile folder' }),
        el('input', { id: 'tiles', type: 'file', webkitdirectory: true, multiple: true }),
        el('div', { class: 'row' }, el('button', { type: 'button', id: 'upload', onclick: onUpload, text: 'Upload tiles' }),
          el('button', { type: 'button', id: 'publish', onclick: onPublish, text: 'Publish the map' })),
        el('p', { id: 'map-status', role: 'status' })),
      el('section', { id: 'qr', 'aria-labelledby': 'h-qr', hidden: true },
        el('h2', { id: 'h-qr', text: 'QR codes' }),
        el('div', { class: 'row' }, el('button', { type: 'button', id: 'sheet-show', onclick: showSheet, text: 'Make the QR sheet' }),
          el('button', { type: 'button', id: 'sheet-print', onclick: () => window.print(), text: 'Print', disabled: true })),
        el('p', { id: 'qr-status', role: 'status' })),
      el('section', { id: 'live', 'aria-labelledby': 'h-live', hidden: true },
        el('h2', { id: 'h-live', text: 'Live figures' }),
        el('dl', { id: 'figures' }), el('h3', { text: 'Leaderboard' }), el('ol', { id: 'top', class: 'lb' }))),
    el('div', { id: 'sheet', class: 'sheet' }));
}

// ---- definition: form <-> JSON ----------------------------------------------------------
const PUBLIC_ONLY = ['chests_left', 'items_left', 'map_version', 'players', 'seed_commitment', 'seed'];

async function onLoad(ev) {
  ev.preventDefault();
  const id = ev.target.id.value.trim(), status = $('#hunt-status');
  st.hunt = id;
  let def;
  try {
    def = await admin('GET', `/v1/hunts/${id}`);
    // Hidden codes have no position in the public answer: the admin list has them.
    const codes = (await admin('GET', `/v1/hunts/${id}/codes`)).codes;
    def.codes = codes.map(({ payload, ...c }) => c);
    PUBLIC_ONLY.forEach(k => delete def[k]);
    status.textContent = `Editing '${id}'.`;
  } catch (e) {
    if (e.code === 'unauthorized' || e.code === 'forbidden') return keyView('That admin key was refused.');
    if (e.code !== 'hunt_not_found') { status.textContent = e.message; return; }
    def = { name: id, map: { width: 16, height: 16 }, codes: [], items: [], zones: [] };
    status.textContent = `No hunt '${id}' yet: fill it in and save to create it.`;
  }
  st.def = def;
  for (const s of ['#editor', '#maps', '#qr', '#live']) $(s).hidden = false;
  fillForm(); clearErrors();
  startFigures();
}

function fillForm() {
  const d = st.def;
  $('#f-name').value = d.name || '';
  $('#f-starts').value = d.starts_at || '';
  $('#f-ends').value = d.ends_at || '';
  $('#f-width').value = d.map ? d.map.width : '';
  $('#f-height').value = d.map ? d.map.height : '';
  $('#f-json').value = JSON.stringify(d, null, 2);
}

// The form's fields win over the JSON: they are what the organizer edited last.
function fromForm() {
  let d;
  try { d = JSON.parse($('#f-json').value); } catch (e) { showError('f-json', 'This is not valid JSON: ' + e.message); return null; }
  if (!d || typeof d !== 'object' || Array.isArray(d)) { showError('f-json', 'The definition is a JSON object.'); return null; }
  d.name = $('#f-name').value;
  for (const [k, id] of [['starts_at', '#f-starts'], ['ends_at', '#f-ends']]) {
    const v = $(id).value.trim();
    if (v) d[k] = v; else delete d[k];
  }
  d.map = { ...(d.map || {}), width: Number($('#f-width').value), height: Number($('#f-height').value) };
  return d;
}

function clearErrors() {
  document.querySelectorAll('.field-error').forEach(p => { p.textContent = ''; });
  document.querySelectorAll('[aria-invalid]').forEach(i => i.removeAttribute('aria-invalid'));
}

function showError(id, msg) {
  const input = $('#' + id);
  input.setAttribute('aria-invalid', 'true');
  input.setAttribute('aria-describedby', id + '-error');
  $('#' + id + '-error').textContent = msg;
  input.focus();
}

// The server's message starts with the field it is about ("map.width: ..."): shown there.
const FIELDS = [['name', 'f-name'], ['starts_at', 'f-starts'], ['ends_at', 'f-ends'], ['map.width', 'f-width'], ['map.height', 'f-height']];
function fieldOf(msg) {
  for (const [k, id] of FIELDS) if (msg.startsWith(k + ':') || msg.startsWith(k + ' ')) return id;
  return 'f-json';
}

async function onSave(ev) {
  ev.preventDefault();
  clearErrors();
  const d = fromForm(), status = $('#save-status');
  if (!d) return;
  status.textContent = 'Saving…';
  try {
    const r = await admin('PUT', `/v1/hunts/${st.hunt}`, { body: d });
    PUBLIC_ONLY.forEach(k => delete r[k]);
    status.textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
    await onLoad({ preventDefault() {}, target: { id: { value: st.hunt } } });
    status.textContent = `Saved at ${new Date().toLocaleTimeString()}.`;
  } catch (e) {
    status.textContent = 'Not saved.';
    showError(e instanceof ApiError && e.status === 400 ? fieldOf(e.message) : 'f-json', e.message);
  }
}

// ---- map tiles --------------------------------------------------------------------------
const TYPES = { png: 'image/png', svg: 'image/svg+xml', jpg: 'image/jpeg', jpeg: 'image/jpeg', webp: 'image/webp', gif: 'image/gif', avif: 'image/avif' };

async function onUpload() {
  const files = [...$('#tiles').files], status = $('#map-status'), todo = [];
  for (const f of files) {
    const parts = (f.webkitRelativePath || f.name).split('/'), m = /^(\d+)\.(\w+)$/.exec(parts.pop() || '');
    const x = parts.pop();
    if (m && /^\d+$/.test(x || '')) todo.push({ f, x: Number(x), y: Number(m[1]), type: TYPES[m[2].toLowerCase()] || f.type || 'application/octet-stream' });
  }
  if (!todo.length) { status.textContent = 'No x/y.ext files in that folder.'; return; }
  let done = 0, failed = [];
  const worker = async () => {
    for (let t; (t = todo.shift());) {
      try { await adminWrite('PUT', `/v1/hunts/${st.hunt}/tiles/${t.x}/${t.y}`, { body: t.f, raw: true, type: t.type }); done++; }
      catch (e) { failed.push(`${t.x}/${t.y}: ${e.message}`); }
      status.textContent = `${done} tiles uploaded` + (failed.length ? `, ${failed.length} refused` : '') + '…';
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  status.textContent = `${done} tiles uploaded to the draft.` + (failed.length ? ` Refused: ${failed.slice(0, 5).join('; ')}` : ' Publish to show them.');
}

async function onPublish() {
  const status = $('#map-status');
  try {
    const r = await adminWrite('POST', `/v1/hunts/${st.hunt}/map/publish`, { body: {} });
    status.textContent = `Map version ${r.version} published: players see it now.`;
    figures().catch(() => {});
  } catch (e) { status.textContent = 'Not published: ' + e.message; }
}

// ---- QR sheet ---------------------------------------------------------------------------
async function showSheet() {
  const status = $('#qr-status'), sheet = $('#sheet');
  status.textContent = 'Making the sheet…';
  try {
    const { codes } = await admin('GET', `/v1/hunts/${st.hunt}/codes`);
    const cards = await Promise.all(codes.map(async c => {
      const res = await fetch(`/v1/hunts/${st.hunt}/codes/${c.id}/qr.svg`, { headers: { Authorization: 'Bearer ' + adminKey() } });
      if (!res.ok) throw new Error(`QR of ${c.id}: HTTP ${res.status}`);
      const url = URL.createObjectURL(await res.blob());
      return el('figure', { class: 'card' }, el('img', { src: url, alt: `QR code ${c.id}` }),
        el('figcaption', {}, el('strong', { text: c.id }), ` — ${c.points} points`, el('br'), el('code', { text: c.payload })));
    }));
    sheet.replaceChildren(el('h2', { class: 'sheet-title', text: `${st.def.name} — QR codes` }), ...cards);
    $('#sheet-print').disabled = false;
    status.textContent = `${codes.length} codes on the sheet (below; it prints 6 to an A4 page).`;
  } catch (e) { status.textContent = 'No sheet: ' + e.message; }
}

// ---- live figures -----------------------------------------------------------------------
function metric(text, name) {
  let sum = 0, found = false;
  for (const line of text.split('\n')) {
    if (line.startsWith(name + ' ') || line.startsWith(name + '{')) { sum += Number(line.slice(line.lastIndexOf(' ') + 1)); found = true; }
  }
  return found ? sum : null;
}

async function figures() {
  const [s, h, lb, m] = await Promise.all([admin('GET', `/v1/hunts/${st.hunt}/stats`), admin('GET', `/v1/hunts/${st.hunt}`),
    admin('GET', `/v1/hunts/${st.hunt}/leaderboard?limit=10`), admin('GET', '/metrics').catch(() => '')]);
  const now = performance.now(), p = st.prev;
  const cs = metric(m, 'veltrix_log_commit_seconds_sum'), cc = metric(m, 'veltrix_log_commit_seconds_count');
  const eps = p ? ((s.seq - p.seq) * 1000 / (now - p.t)).toFixed(1) : '…';
  const lat = p && cc > p.cc ? ((cs - p.cs) / (cc - p.cc) * 1000).toFixed(2) + ' ms' : cc ? (cs / cc * 1000).toFixed(2) + ' ms (since start)' : '–';
  st.prev = { seq: s.seq, t: now, cs, cc };
  const sum = o => Object.values(o || {}).reduce((a, b) => a + b, 0);
  const rows = [['Players', s.players], ['Events per second', eps], ['Scans', s.scans], ['Chests left', sum(h.chests_left)],
    ['Items left', sum(h.items_left)], ['Map version', h.map_version ?? 'none'], ['Log commit latency', lat],
    ['Live connections (hunt / server)', `${s.live_connections} / ${metric(m, 'veltrix_live_connections') ?? '?'}`],
    ['Rate-limited requests', metric(m, 'veltrix_rate_limited_total') ?? '?'], ['Store lag', s.store_lag_ms + ' ms'], ['Event sequence', s.seq]];
  $('#figures').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
  $('#top').replaceChildren(...lb.entries.map(e => el('li', {}, el('span', { class: 'rank', text: String(e.rank) }),
    el('span', { text: e.display_name }), el('span', { text: String(e.score) }))));
  if (!lb.entries.length) $('#top').append(el('li', { class: 'muted', text: 'Nobody has scored yet' }));
}

function startFigures() {
  clearInterval(st.timer); st.prev = null;
  const tick = () => figures().catch(() => {});
  tick(); st.timer = setInterval(tick, 2000);
}

if (adminKey()) mainView(); else keyView();
