// game.js — the player app's game screen (see player.js): the map (Leaflet, simple CRS,
// one tile per map cell), positions, scanning, items and chests, inventory, the live
// leaderboard and feed, and the fairness figures.
import L from 'leaflet';
import { $, el, write, request, Live, ApiError, feedText } from './common.js';

const TILE = 256, TILE_ZOOM_MIN = -2, FEED_BACKLOG = 20;
const st = {
  hunt: null, def: null, me: null, pos: null, names: new Map(), others: new Map(), opened: new Map(),
  top: [], feedSeqs: new Set(), startSeq: 0, replaying: () => false,
};
let session, showJoin, map, tiles, youMarker, live, statsTimer;

function toast(text, kind = 'info') {
  const t = $('#toast');
  t.textContent = text; t.className = 'toast ' + kind;
}

export function stopGame() {
  if (live) { live.stop(); live = null; }
  clearInterval(statsTimer);
  if (map) { map.remove(); map = null; tiles = null; youMarker = null; }
  st.others.clear(); st.opened.clear(); st.feedSeqs.clear(); st.pos = null;
}

// ---- the game screen ------------------------------------------------------------------
function layout() {
  const h = st.def;
  rows.clear();
  document.body.replaceChildren(
    el('header', {},
      el('h1', { text: h.name }),
      el('p', { class: 'me' },
        el('span', { id: 'who', text: session.player.display_name }),
        el('span', {}, 'Score ', el('strong', { id: 'score', text: '0' })),
        el('span', {}, 'Rank ', el('strong', { id: 'rank', text: '–' })),
        el('span', { id: 'conn', class: 'conn', text: 'connecting' })),
      el('button', { type: 'button', class: 'link', onclick: leave, text: 'Leave' })),
    el('main', { class: 'game' },
      el('section', { class: 'map-sec', 'aria-label': 'Map' },
        el('div', { id: 'map' }),
        el('p', { class: 'hint', id: 'pos', text: 'Tap the map where you are.' })),
      el('section', { 'aria-labelledby': 'h-scan' },
        el('h2', { id: 'h-scan', text: 'Scan a code' }),
        el('form', { id: 'scan', onsubmit: onScanForm },
          el('label', { for: 'code', text: 'Code (as printed under the QR)' }),
          el('div', { class: 'row' },
            el('input', { id: 'code', name: 'code', autocomplete: 'off', required: true, spellcheck: 'false' }),
            el('button', { type: 'submit', text: 'Scan' }))),
        el('button', { type: 'button', id: 'camera', onclick: onCamera, text: 'Scan with the camera' }),
        el('div', { id: 'camera-box', hidden: true },
          el('video', { id: 'video', playsinline: true, muted: true, 'aria-label': 'Camera view' }),
          el('button', { type: 'button', id: 'camera-stop', text: 'Stop the camera' })),
        el('p', { id: 'last-scan', role: 'status' })),
      el('section', { 'aria-labelledby': 'h-here' },
        el('h2', { id: 'h-here', text: 'Chests and items' }),
        el('ul', { id: 'zones', class: 'plain' }), el('ul', { id: 'items', class: 'plain' })),
      el('section', { 'aria-labelledby': 'h-inv' },
        el('h2', { id: 'h-inv', text: 'Inventory' }), el('ul', { id: 'inventory', class: 'chips' })),
      el('section', { 'aria-labelledby': 'h-lb' },
        el('h2', { id: 'h-lb', text: 'Leaderboard' }), el('ol', { id: 'top', class: 'lb' }),
        el('h3', { text: 'Around you' }), el('ol', { id: 'around', class: 'lb' })),
      el('section', { 'aria-labelledby': 'h-feed' },
        el('h2', { id: 'h-feed', text: 'Live feed' }), el('ol', { id: 'feed', class: 'feed' })),
      el('section', { 'aria-labelledby': 'h-fair' },
        el('h2', { id: 'h-fair', text: 'Fairness' }), el('dl', { id: 'fair' }))),
    el('div', { id: 'toast', class: 'toast', role: 'status', 'aria-live': 'polite' }));
}

function leave() { session.clear(); showJoin(); }

export async function startGame(hunt, sess, onJoin) {
  st.hunt = hunt; session = sess; showJoin = onJoin;
  // Everything the screen shows at once, in parallel, then drawn.
  const [def, stats, me, top, around] = await Promise.all([request('GET', `/v1/hunts/${st.hunt}`),
    request('GET', `/v1/hunts/${st.hunt}/stats`), fetchMe(), request('GET', `/v1/hunts/${st.hunt}/leaderboard?limit=10`), fetchAround()]);
  st.def = def; st.me = me;
  layout();
  setupMap();
  renderFair(stats);
  renderMe(); renderTop(top.entries); renderAround(around);
  renderHere();
  live = new Live(st.hunt, () => session.token(), {
    onMessage, onState: s => { const c = $('#conn'); c.textContent = s; c.dataset.state = s; },
    onResync: () => reloadState(),
  });
  // The feed starts with the last few events (replayed through `since`).
  st.startSeq = stats.seq;
  st.replaying = m => m.seq <= st.startSeq;
  live.start(Math.max(0, stats.seq - FEED_BACKLOG));
  statsTimer = setInterval(() => request('GET', `/v1/hunts/${st.hunt}/stats`).then(renderFair).catch(() => {}), 5000);
  document.body.dataset.ready = String(performance.now());
}

async function reloadState() {
  try {
    st.def = await request('GET', `/v1/hunts/${st.hunt}`);
    setTiles(st.def.map_version);
    await Promise.all([loadMe(), loadBoard()]);
    rows.clear(); $('#zones').replaceChildren(); $('#items').replaceChildren();
    renderHere();
  } catch { /* the next message or reconnect tries again */ }
}

// ---- map ------------------------------------------------------------------------------
const toLatLng = (x, y) => L.latLng(-y * TILE, x * TILE);

function setupMap() {
  const { width: w, height: h } = st.def.map;
  const bounds = L.latLngBounds(toLatLng(0, h), toLatLng(w, 0));
  map = L.map('map', { crs: L.CRS.Simple, minZoom: -6, maxZoom: 2, zoomSnap: 0.25, attributionControl: false,
    maxBounds: bounds.pad(0.5) });
  // Tiles are drawn from zoom -2 up (64 px a cell): further out, a map of thousands of
  // cells would load and scale them all. The overview below that shows zones and codes.
  map.setView(bounds.getCenter(), Math.max(map.getBoundsZoom(bounds), TILE_ZOOM_MIN));
  L.rectangle(bounds, { className: 'map-edge', interactive: false, fill: false, weight: 1 }).addTo(map);
  setTiles(st.def.map_version);
  for (const z of st.def.zones || [])
    L.rectangle(L.latLngBounds(toLatLng(z.x, z.y + z.h), toLatLng(z.x + z.w, z.y)),
      { className: 'zone zone-' + z.id, interactive: false, weight: 2 }).addTo(map)
      .bindTooltip(z.id, { permanent: true, direction: 'center', className: 'zone-label' });
  for (const c of st.def.codes || [])
    if (c.x != null) L.circleMarker(toLatLng(c.x + 0.5, c.y + 0.5), { radius: 6, className: 'code', interactive: false }).addTo(map);
  for (const i of st.def.items || [])
    L.circleMarker(toLatLng(i.x + 0.5, i.y + 0.5), { radius: 6, className: 'item', interactive: false }).addTo(map)
      .bindTooltip(i.id, { direction: 'top', className: 'item-label' });
  map.on('click', e => moveTo(e.latlng.lng / TILE, -e.latlng.lat / TILE));
}

function setTiles(version) {
  if (version == null) return;
  const url = `/tiles/${st.hunt}/{x}/{y}?v=${version}`;
  if (tiles) { tiles.setUrl(url); return; }
  const { width: w, height: h } = st.def.map;
  tiles = L.tileLayer(url, { tileSize: TILE, minZoom: TILE_ZOOM_MIN, maxZoom: 2, minNativeZoom: 0, maxNativeZoom: 0, noWrap: true,
    bounds: L.latLngBounds(toLatLng(0, h), toLatLng(w, 0)), className: 'map-tiles' }).addTo(map);
  tiles.bringToBack();
}

async function moveTo(x, y) {
  const { width: w, height: h } = st.def.map;
  if (!(x >= 0 && y >= 0 && x < w && y < h)) return;
  x = Math.round(x * 100) / 100; y = Math.round(y * 100) / 100;
  try {
    await session.call(async auth => request('POST', `/v1/hunts/${st.hunt}/position`, { body: { x, y }, token: await auth() }));
  } catch (e) {
    toast(e.code === 'implausible_move' ? 'That is too far to go at once: move in steps.' : 'Could not move: ' + e.message, 'error');
    return;
  }
  st.pos = { x, y };
  if (!youMarker) youMarker = L.circleMarker(toLatLng(x, y), { radius: 9, className: 'you', interactive: false }).addTo(map);
  else youMarker.setLatLng(toLatLng(x, y));
  $('#pos').textContent = `You are at ${x.toFixed(1)}, ${y.toFixed(1)}.` + (zoneAt(x, y) ? ` Zone ${zoneAt(x, y).id}.` : '');
  renderHere();
}

function showOther(m) {
  if (m.player_id === session.player.player_id) return;
  let o = st.others.get(m.player_id);
  if (!o) {
    o = { marker: L.circleMarker(toLatLng(m.x, m.y), { radius: 6, className: 'other', interactive: false }).addTo(map) };
    st.others.set(m.player_id, o);
  }
  o.marker.setLatLng(toLatLng(m.x, m.y));
  clearTimeout(o.timer);
  o.timer = setTimeout(() => { o.marker.remove(); st.others.delete(m.player_id); }, 60000);
}

// ---- me, chests, items -----------------------------------------------------------------
const zoneAt = (x, y) => (st.def.zones || []).find(z => x >= z.x && x < z.x + z.w && y >= z.y && y < z.y + z.h);

const fetchMe = () => session.call(async auth => request('GET', `/v1/hunts/${st.hunt}/me`, { token: await auth() }));

async function loadMe() {
  st.me = await fetchMe();
  renderMe();
}

function renderMe() {
  const me = st.me;
  $('#score').textContent = String(me.score);
  $('#rank').textContent = me.rank == null ? '–' : String(me.rank);
  const inv = $('#inventory');
  inv.replaceChildren(...Object.entries(me.inventory || {}).filter(([, n]) => n > 0).map(([k, n]) => el('li', { text: `${k} × ${n}` })));
  if (!inv.children.length) inv.append(el('li', { class: 'muted', text: 'Nothing yet' }));
}

// Why this player cannot open a chest of zone z now, or null when they can try.
function chestBlock(z) {
  const left = (st.def.chests_left || {})[z.id];
  if (left === 0) {
    const last = st.opened.get(z.id);
    return last ? `Taken: ${last.chest} was opened by ${st.names.get(last.player_id) || 'another player'}` : 'All chests here are taken';
  }
  if (!st.pos || zoneAt(st.pos.x, st.pos.y) !== z) return 'Walk into this zone to open a chest';
  if (z.chest_range) return null;
  const inv = st.me.inventory || {}, need = new Set();
  for (const c of z.chests || []) {
    if ((st.me.opened || []).includes(c.id) || [...st.opened.values()].some(o => o.chest === c.id)) continue;
    if (!c.requires || inv[c.requires] > 0) return null;
    need.add(c.requires);
  }
  return need.size ? `Key missing: you need ${[...need].join(' or ')}` : null;
}

// Rows are made once and updated in place: a button under the player's finger is never
// replaced by a re-render while they tap it.
const rows = new Map();
function row(list, key, attrs, onclick, label) {
  let r = rows.get(key);
  if (!r) {
    r = { li: el('li', attrs), title: el('span'), btn: el('button', { type: 'button', class: attrs.class === 'zone-row' ? 'open' : null, onclick, text: label }), why: el('span', { class: 'why' }) };
    r.li.append(r.title, r.btn, r.why);
    list.append(r.li);
    rows.set(key, r);
  }
  return r;
}

function renderHere() {
  for (const z of st.def.zones || []) {
    const why = chestBlock(z), left = (st.def.chests_left || {})[z.id];
    const r = row($('#zones'), 'z:' + z.id, { class: 'zone-row', 'data-zone': z.id }, () => openChest(z), 'Open a chest');
    r.title.replaceChildren(el('strong', { text: z.id }), ` — ${left ?? '?'} chest${left === 1 ? '' : 's'} left`);
    r.btn.disabled = why != null;
    r.why.textContent = why || 'You are in this zone';
  }
  for (const i of st.def.items || []) {
    const left = (st.def.items_left || {})[i.id], got = (st.me.collected || []).includes(i.id);
    const d = st.pos ? Math.hypot(st.pos.x - i.x - 0.5, st.pos.y - i.y - 0.5) : Infinity;
    const why = got ? 'You have collected it' : left === 0 ? 'All taken' : d > 1.5 ? `Walk to ${i.x}, ${i.y}` : null;
    const r = row($('#items'), 'i:' + i.id, { class: 'item-row', 'data-item': i.id }, () => collect(i), 'Collect');
    r.title.replaceChildren(el('strong', { text: i.id }), ` — ${left ?? '?'} left`);
    r.btn.disabled = why != null;
    r.why.textContent = why || 'Within reach';
  }
}

const retryNote = () => toast('Network trouble: retrying (it will count once)…', 'warn');

async function playerWrite(path, body) {
  const r = await session.call(auth => write('POST', `/v1/hunts/${st.hunt}/${path}`, { body, auth }, retryNote));
  document.body.dataset.answeredAt = String(Date.now());
  return r;
}

async function openChest(z) {
  try {
    const r = await playerWrite(`zones/${z.id}/open`, {});
    toast(`You opened ${r.chest}: +${r.points} points` + (r.loot && r.loot.length ? `, found ${r.loot.join(', ')}` : ''), 'good');
    Object.assign(st.me, { score: r.score, rank: r.rank });
    await loadMe();
  } catch (e) {
    if (e.code === 'no_chest_available') {
      // The feed says who took it, maybe a moment after this answer: tooLate() then.
      const last = st.opened.get(z.id);
      if (last) tooLate(last);
      else { st.lostZone = z.id; toast('No chest here that you can open: all taken, or a key is missing', 'error'); }
    } else toast('Could not open: ' + e.message, 'error');
  }
  renderHere();
}

function tooLate(m) {
  st.lostZone = null;
  toast(`Too late: ${m.chest} was opened by ${st.names.get(m.player_id) || 'another player'}`, 'error');
}

async function collect(i) {
  try {
    const r = await playerWrite(`items/${i.id}/collect`, {});
    toast(`You collected ${r.item} (${r.remaining} left)`, 'good');
    await loadMe();
  } catch (e) { toast('Could not collect: ' + e.message, 'error'); }
  renderHere();
}

// ---- scanning ---------------------------------------------------------------------------
let lastPayload = '', lastAt = 0;
async function scan(payload, source, t0) {
  payload = payload.trim();
  if (!payload || (payload === lastPayload && Date.now() - lastAt < 5000)) return;
  lastPayload = payload; lastAt = Date.now();
  const out = $('#last-scan');
  try {
    const r = await playerWrite('scans', { code: payload });
    out.textContent = `+${r.points} points for ${r.code}`;
    out.className = 'good';
    Object.assign(st.me, { score: r.score, rank: r.rank });
    st.me.scanned = [...(st.me.scanned || []), r.code];
    renderMe();
    if (t0 != null) document.body.dataset.cameraScanMs = String(Math.round(performance.now() - t0));
  } catch (e) {
    out.className = 'error';
    out.textContent = e.code === 'already_scanned' ? 'You have already scanned this code.'
      : e.code === 'invalid_code' ? 'That is not a code of this hunt.' : 'Scan failed: ' + e.message;
  }
}

function onScanForm(ev) {
  ev.preventDefault();
  scan(ev.target.code.value, 'typed').then(() => { ev.target.code.value = ''; });
}

let camera = null;
async function onCamera() {
  if (camera) return;
  $('#camera-box').hidden = false;
  try {
    const { startCamera } = await import('./camera.js');
    camera = await startCamera($('#video'), (payload, t0) => scan(payload, 'camera', t0));
    $('#camera-stop').onclick = () => { camera.stop(); camera = null; $('#camera-box').hidden = true; };
  } catch (e) {
    $('#camera-box').hidden = true;
    toast('No camera: ' + (e.message || e.name) + '. Type the code instead.', 'error');
  }
}

// ---- leaderboard, feed, fairness ---------------------------------------------------------
async function loadBoard() {
  const top = await request('GET', `/v1/hunts/${st.hunt}/leaderboard?limit=10`);
  renderTop(top.entries);
  await loadAround();
}

let aroundTimer = null;
const fetchAround = () => request('GET', `/v1/hunts/${st.hunt}/leaderboard?around=${session.player.player_id}&radius=3`).catch(() => null);

async function loadAround() { renderAround(await fetchAround()); }

function renderAround(r) {
  const entries = r ? r.entries : [];
  for (const e of entries) st.names.set(e.player_id, e.display_name);
  $('#around').replaceChildren(...lbRows(entries));
  if (!entries.length) $('#around').append(el('li', { class: 'muted', text: 'Score to enter the leaderboard' }));
}

function lbRows(entries) {
  const me = session.player.player_id;
  return entries.map(e => el('li', { class: e.player_id === me ? 'mine' : null, value: e.rank },
    el('span', { class: 'rank', text: String(e.rank) }), el('span', { class: 'name', text: e.display_name }),
    el('span', { class: 'pts', text: String(e.score) })));
}

function renderTop(entries) {
  st.top = entries;
  for (const e of entries) st.names.set(e.player_id, e.display_name);
  $('#top').replaceChildren(...lbRows(entries));
  if (!entries.length) $('#top').append(el('li', { class: 'muted', text: 'Nobody has scored yet' }));
}

// A chest opener's name is not in the event: the leaderboard has it (a chest scores).
async function nameOf(id) {
  if (st.names.has(id)) return;
  const r = await request('GET', `/v1/hunts/${st.hunt}/leaderboard?around=${id}&radius=0`).catch(() => null);
  for (const e of (r && r.entries) || []) st.names.set(e.player_id, e.display_name);
}

async function addFeed(m) {
  if (st.feedSeqs.has(m.seq)) return;
  st.feedSeqs.add(m.seq);
  if (m.type === 'scan') st.names.set(m.player_id, m.display_name);
  const li = el('li', { 'data-seq': m.seq, 'data-type': m.type, text: feedText(m, st.names) });
  const feed = $('#feed');
  feed.prepend(li);
  while (feed.children.length > 60) feed.lastChild.remove();
  if (m.player_id && !st.names.has(m.player_id)) { await nameOf(m.player_id); li.textContent = feedText(m, st.names); renderHere(); }
}

function onMessage(m) {
  switch (m.type) {
    case 'position': showOther(m); return;
    case 'leaderboard': renderTop(m.entries); clearTimeout(aroundTimer); aroundTimer = setTimeout(loadAround, 300); return;
    case 'chest_opened':
      st.opened.set(m.zone, m);
      if (st.lostZone === m.zone && m.player_id !== session.player.player_id) nameOf(m.player_id).then(() => tooLate(m));
      if (!st.replaying(m) && st.def.chests_left && st.def.chests_left[m.zone] > 0) st.def.chests_left[m.zone]--;
      renderHere(); break;
    case 'item_collected':
      if (!st.replaying(m) && st.def.items_left) st.def.items_left[m.item] = m.remaining;
      renderHere(); break;
    case 'map_published': // a replayed older one does not take the map back
      if (!(st.def.map_version >= m.version)) { st.def.map_version = m.version; setTiles(m.version); }
      break;
    case 'hunt_updated': if (!st.replaying(m)) reloadState(); break;
  }
  if (m.seq != null) addFeed(m);
}

function renderFair(s) {
  const rows = [['Event sequence', s.seq], ['Players', s.players], ['Scans', s.scans], ['Chests left', s.chests_left],
    ['Live connections', s.live_connections], ['Store lag', s.store_lag_ms + ' ms'],
    ['Seed commitment (SHA-256)', st.def.seed_commitment || 'none'], ['Seed (revealed after the end)', st.def.seed || 'not yet']];
  if (s.head_hash) rows.push(['Log head hash (SHA-256 chain)', s.head_hash]);
  if (s.replication_lag_ms != null) rows.push(['Replication lag', s.replication_lag_ms + ' ms']);
  $('#fair').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', { text: k }), el('dd', { text: String(v) })]));
}


