// The admin view (/admin): the server API with the operator's key. Nodes with their
// counters, rooms with their members (roles, drift) where the server lists them, and kick
// and disconnect. The key is kept in this module's memory only; every value shown is set
// as text, never parsed as HTML.

const REFRESH_MS = 3000;
let apiKey = null;
let timer = null;

const $ = (id) => document.getElementById(id);

function status(text, kind = 'info') {
  const el = $('admin-status');
  el.textContent = text;
  el.dataset.kind = kind;
}

/** A server API call; resolves to {status, body}. */
async function call(method, path, body) {
  const headers = { 'x-api-key': apiKey };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let json = null;
  try {
    json = await res.json();
  } catch (_) {
    json = null;
  }
  return { status: res.status, body: json };
}

function errorText(answer) {
  return answer.body?.error?.message || `HTTP ${answer.status}`;
}

function cell(row, text) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '–' : String(text);
  row.appendChild(td);
  return td;
}

function button(label, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  b.addEventListener('click', onClick);
  return b;
}

function renderNodes(nodes) {
  const body = $('nodes').querySelector('tbody');
  body.replaceChildren();
  for (const n of nodes) {
    const row = document.createElement('tr');
    row.dataset.node = n.node_id;
    for (const v of [n.node_id, n.region, n.connections, n.rooms, n.deliveries_total, n.refusals_total]) cell(row, v);
    body.appendChild(row);
  }
}

async function kick(room, userId) {
  const answer = await call('POST', `/api/v1/server/rooms/${encodeURIComponent(room)}/kick`, { user_id: userId });
  if (answer.status === 200) status(`kicked ${userId} (seq ${answer.body.seq})`);
  else status(`kick refused: ${errorText(answer)}`, 'error');
  await refresh();
}

async function disconnect(userId) {
  const answer = await call('POST', `/api/v1/server/users/${encodeURIComponent(userId)}/disconnect`);
  if (answer.status === 200) status(`disconnected ${userId}: ${answer.body.connections} connection(s) closed`);
  else status(`disconnect refused: ${errorText(answer)}`, 'error');
  await refresh();
}

/** One room: its members with role, status and drift when the server lists them. */
async function renderRoom(room) {
  const box = document.createElement('div');
  box.className = 'admin-room';
  box.dataset.room = room.id;
  const title = document.createElement('h3');
  title.textContent = `${room.name} · ${room.members} member(s) · ${room.id}`;
  box.appendChild(title);
  const res = await fetch(`/api/v1/rooms/${encodeURIComponent(room.id)}/members`);
  if (!res.ok) {
    const note = document.createElement('p');
    note.className = 'muted';
    note.textContent = 'this server does not list members of rooms';
    box.appendChild(note);
    return box;
  }
  const { members } = await res.json();
  const table = document.createElement('table');
  table.className = 'admin-table members';
  const head = document.createElement('tr');
  for (const h of ['name', 'user', 'role', 'status', 'drift (ms)', '']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.appendChild(th);
  }
  table.appendChild(head);
  for (const m of members) {
    const row = document.createElement('tr');
    row.dataset.user = m.user_id;
    cell(row, m.name);
    cell(row, m.user_id);
    cell(row, m.role);
    cell(row, m.status);
    cell(row, m.drift_ms === null || m.drift_ms === undefined ? null : Math.round(m.drift_ms));
    const actions = cell(row, '');
    actions.replaceChildren(
      button('Kick', () => kick(room.id, m.user_id)),
      button('Disconnect', () => disconnect(m.user_id)),
    );
    table.appendChild(row);
  }
  box.appendChild(table);
  return box;
}

async function renderRooms() {
  const res = await fetch('/api/v1/rooms?limit=100');
  if (!res.ok) return;
  const { rooms } = await res.json();
  const boxes = await Promise.all(rooms.map(renderRoom));
  $('rooms').replaceChildren(...boxes);
}

async function refresh() {
  if (!apiKey) return false;
  const answer = await call('GET', '/api/v1/server/stats');
  if (answer.status === 401 || answer.status === 404) {
    apiKey = null;
    clearInterval(timer);
    $('admin-view').hidden = true;
    $('admin-login').hidden = false;
    status(answer.status === 401 ? 'that key is not this server’s' : 'the server API is off on this server', 'error');
    return false;
  }
  if (answer.status !== 200) {
    status(`stats unavailable: ${errorText(answer)}`, 'error');
    return true;
  }
  renderNodes(answer.body.nodes);
  await renderRooms();
  return true;
}

$('admin-key-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  apiKey = $('admin-key').value;
  $('admin-key').value = '';
  if (await refresh()) {
    $('admin-login').hidden = true;
    $('admin-view').hidden = false;
    status('');
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
  }
});

$('disconnect-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const user = $('disconnect-user').value.trim();
  if (user) await disconnect(user);
});
