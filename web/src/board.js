// board.js — the venue screen (GET /board/{hunt}): a full-screen live leaderboard and feed,
// readable on a projector from the back of a hall. The live stream needs a player token,
// so the screen joins once as the player "Venue screen" (it never scores, so it never
// shows in the leaderboard) and keeps that session in this browser.
import './common.css';
import './board.css';
import { $, el, request, Session, Live, feedText } from './common.js';

const hunt = decodeURIComponent(location.pathname.split('/')[2] || '');
const names = new Map();
const session = new Session('vx.board.' + hunt, () => start());
let live = null;

function layout(def) {
  document.body.replaceChildren(el('main', { class: 'board' },
    el('header', {}, el('h1', { text: def.name }), el('p', { id: 'figures', class: 'figures' }),
      el('span', { id: 'conn', class: 'conn', text: 'connecting' })),
    el('section', { class: 'top', 'aria-labelledby': 'h-top' }, el('h2', { id: 'h-top', text: 'Leaderboard' }), el('ol', { id: 'top' })),
    el('section', { class: 'feed', 'aria-labelledby': 'h-feed' }, el('h2', { id: 'h-feed', text: 'Live' }), el('ol', { id: 'feed' }))));
}

function renderTop(entries) {
  for (const e of entries) names.set(e.player_id, e.display_name);
  $('#top').replaceChildren(...entries.map(e => el('li', { 'data-player': e.player_id },
    el('span', { class: 'rank', text: String(e.rank) }), el('span', { class: 'name', text: e.display_name }),
    el('span', { class: 'pts', text: String(e.score) }))));
  if (!entries.length) $('#top').append(el('li', { class: 'empty', text: 'Scan a code to get on the board!' }));
}

async function addFeed(m) {
  if (m.type === 'scan') names.set(m.player_id, m.display_name);
  const li = el('li', { 'data-seq': m.seq, 'data-at': Date.now(), text: feedText(m, names) });
  const feed = $('#feed');
  feed.prepend(li);
  while (feed.children.length > 8) feed.lastChild.remove();
  if (m.player_id && !names.has(m.player_id)) {
    const r = await request('GET', `/v1/hunts/${hunt}/leaderboard?around=${m.player_id}&radius=0`).catch(() => null);
    for (const e of (r && r.entries) || []) names.set(e.player_id, e.display_name);
    li.textContent = feedText(m, names);
  }
}

async function figures() {
  const s = await request('GET', `/v1/hunts/${hunt}/stats`);
  $('#figures').textContent = `${s.players} players · ${s.scans} scans · ${s.chests_left} chests left`;
  return s;
}

async function start() {
  if (live) { live.stop(); live = null; }
  try {
    const def = await request('GET', `/v1/hunts/${hunt}`);
    layout(def);
    if (!session.player) await session.join('Venue screen');
    const [s, lb] = await Promise.all([figures(), request('GET', `/v1/hunts/${hunt}/leaderboard?limit=10`)]);
    renderTop(lb.entries);
    live = new Live(hunt, () => session.token(), {
      onMessage: m => {
        if (m.type === 'leaderboard') renderTop(m.entries);
        else if (m.seq != null) { addFeed(m); if (m.type !== 'hunt_updated') figures().catch(() => {}); }
      },
      onState: s => { const c = $('#conn'); c.textContent = s; c.dataset.state = s; },
      onResync: () => request('GET', `/v1/hunts/${hunt}/leaderboard?limit=10`).then(r => renderTop(r.entries)).catch(() => {}),
    });
    live.start(Math.max(0, s.seq - 8)); // the feed starts with the last few events
    document.body.dataset.ready = String(performance.now());
  } catch (e) {
    document.body.replaceChildren(el('main', { class: 'board' }, el('h1', { text: e.status === 404 ? `No hunt '${hunt}'` : 'The screen could not start' }),
      el('p', { text: e.message + ' — retrying in 5 s.' })));
    setTimeout(start, 5000);
  }
}

start();
