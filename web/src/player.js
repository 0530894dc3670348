// player.js — the player app (GET /): the join form and the session; the game itself
// (map, scans, chests, leaderboard, feed: game.js, with Leaflet) is a separate chunk,
// preloaded while the form shows, so the form is usable as soon as this small file runs.
// Phone first: one column at 375 px, two from 900 px.
import 'leaflet/dist/leaflet.css';
import './common.css';
import './player.css';
import { $, el, request, Session, ApiError } from './common.js';

const params = new URLSearchParams(location.search);
const st = { hunt: params.get('hunt') || localStorage.getItem('vx.hunt') || 'demo' };
const session = new Session('vx.session', msg => showJoin(msg));
const loading = import('./game.js');
let game = null;

async function play() {
  game = await loading;
  return game.startGame(st.hunt, session, showJoin);
}

// ---- join -----------------------------------------------------------------------------
function showJoin(message) {
  if (game) game.stopGame();
  document.body.replaceChildren(el('main', { class: 'join' },
    el('h1', { text: 'Veltrix treasure hunt' }),
    message ? el('p', { class: 'notice', role: 'alert', text: message }) : null,
    el('form', { id: 'join', onsubmit: onJoin },
      el('label', { for: 'name', text: 'Your display name' }),
      el('input', { id: 'name', name: 'name', required: true, maxlength: 32, autocomplete: 'nickname' }),
      el('label', { for: 'hunt', text: 'Hunt' }),
      el('input', { id: 'hunt', name: 'hunt', required: true, value: st.hunt, pattern: '[a-z0-9_\\-]{1,64}' }),
      el('button', { type: 'submit', text: 'Join' }),
      el('p', { id: 'join-error', class: 'error', role: 'alert' }))));
  document.body.dataset.ready = String(performance.now());
}

async function onJoin(ev) {
  ev.preventDefault();
  const f = ev.target, errEl = $('#join-error');
  errEl.textContent = '';
  st.hunt = f.hunt.value.trim();
  localStorage.setItem('vx.hunt', st.hunt);
  f.querySelector('button').disabled = true;
  try {
    await request('GET', `/v1/hunts/${st.hunt}`); // a mistyped hunt: said before joining
    await session.join(f.name.value);
    await play();
  } catch (e) {
    errEl.textContent = e.code === 'hunt_not_found' ? `There is no hunt '${st.hunt}'.` : e.message;
    f.querySelector('button').disabled = false;
  }
}

// ---- start ------------------------------------------------------------------------------
if (session.player) play().catch(e => e.status === 401 || showJoin(e instanceof ApiError && e.status === 404 ? `No hunt '${st.hunt}'.` : 'Could not load the hunt: ' + e.message));
else showJoin();
