// The queue panel (contract 1.1, "The queue"): what plays next, the same for every member
// because it changes only through the room's events. Add (URL, title), remove, reorder by
// dragging, play next; when the media ends the page sends `next` with the version it
// holds, so that of all the members' pages only the first moves the room on.
import { conn } from './connection.js';
import { room } from './room.js';
import { toast } from './ui.js';
import { $ } from './util.js';

export const queue = {
  items: [], // [QueueItem], in order
  /** The state version a `next` was sent for at the end of the media (sent once per version). */
  endedAt: null,

  reset(items) {
    this.items = Array.isArray(items) ? [...items] : [];
    this.endedAt = null;
    renderQueue();
  },

  /** A `queue` event. */
  apply(d) {
    if (d.action === 'add' && d.item) {
      this.items = this.items.filter((i) => i.item_id !== d.item.item_id);
      this.items.splice(Math.min(d.index ?? this.items.length, this.items.length), 0, d.item);
    } else if (d.action === 'remove') {
      this.items = this.items.filter((i) => i.item_id !== d.item_id);
    } else if (d.action === 'move') {
      const at = this.items.findIndex((i) => i.item_id === d.item_id);
      if (at >= 0) {
        const [item] = this.items.splice(at, 1);
        this.items.splice(Math.min(d.index, this.items.length), 0, item);
      }
    }
    renderQueue();
  },

  /** A `media` event that took the queue's first item (`from_queue`): it left the queue. */
  took(item) {
    if (!item) return;
    this.items = this.items.filter((i) => i.item_id !== item.item_id);
    renderQueue();
  },

  /** The media reached its end: move the room on, once for the version this page holds. */
  async ended() {
    const st = room.state;
    if (!st || !st.playing || !this.items.length || !room.canControl() || this.endedAt === st.version) return;
    this.endedAt = st.version;
    try {
      await conn.request({ type: 'next', room: room.id, if_version: st.version });
    } catch (err) {
      // Another member's page moved the room on first (conflict), or the queue just emptied.
      if (err.code !== 'conflict' && err.code !== 'not_found') toast(`next failed: ${err.code}: ${err.message}`, 'error');
    }
  },
};

async function send(msg) {
  try {
    await conn.request({ room: room.id, ...msg });
    return true;
  } catch (err) {
    toast(`${msg.type.replace('_', ' ')} failed: ${err.code}: ${err.message}`, 'error');
    return false;
  }
}

let dragged = null;

function itemRow(item, index, control) {
  const li = document.createElement('li');
  li.dataset.itemId = item.item_id;
  li.draggable = control;
  const title = document.createElement('span');
  title.className = 'title';
  title.textContent = item.title || item.url;
  title.title = item.url;
  const by = document.createElement('span');
  by.className = 'muted by';
  by.textContent = item.added_by ? item.added_by.name : '';
  li.append(title, by);
  if (control) {
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.className = 'small remove';
    remove.textContent = '✕';
    remove.title = 'remove from the queue';
    remove.addEventListener('click', () => send({ type: 'queue_remove', item_id: item.item_id }));
    li.append(remove);
    li.addEventListener('dragstart', (e) => {
      dragged = item.item_id;
      e.dataTransfer.effectAllowed = 'move';
      e.dataTransfer.setData('text/plain', item.item_id);
    });
    li.addEventListener('dragover', (e) => {
      if (dragged) e.preventDefault();
    });
    li.addEventListener('drop', (e) => {
      e.preventDefault();
      const id = dragged;
      dragged = null;
      if (id && id !== item.item_id) send({ type: 'queue_move', item_id: id, index });
    });
    li.addEventListener('dragend', () => {
      dragged = null;
    });
  }
  return li;
}

let rendered = null;
export function renderQueue() {
  const control = room.canControl() && room.joined;
  // Rebuilt only when it changed: a drag in progress must keep its rows.
  const signature = `${control}|${queue.items.map((i) => i.item_id).join(',')}`;
  if (signature === rendered && $('queue').children.length === queue.items.length) return;
  rendered = signature;
  $('queue-count').textContent = String(queue.items.length);
  $('queue').replaceChildren(...queue.items.map((item, i) => itemRow(item, i, control)));
  $('queue-empty').hidden = queue.items.length > 0;
  $('queue-next').disabled = !control || queue.items.length === 0;
  for (const el of $('queue-form').elements) el.disabled = !control;
}

$('queue-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const url = $('queue-url').value.trim();
  if (!/^https?:\/\//i.test(url)) {
    toast('the video URL must start with http:// or https://', 'error');
    return;
  }
  const title = $('queue-title').value.trim();
  if (await send({ type: 'queue_add', url, ...(title ? { title } : {}) })) $('queue-form').reset();
});
$('queue-next').addEventListener('click', () => send({ type: 'next' }));
