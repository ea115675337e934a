// synctv watch-together page: a small hand-written client of the public wire contract
// (PROTOCOL.md), embedded in the synctv binary. No build step, no dependencies: ES modules
// served by the binary itself (the page's Content-Security-Policy allows its own scripts
// only).
//
// A tour of js/:
//   util.js        $, the wall clock, clamp and median
//   clock.js       NTP-style offset to the server clock from ping/pong samples
//   api.js         the session (token, refresh), HTTP calls, WebSocket tickets
//   servers.js     the candidate servers from /config.json (with their regions), ranked by
//                  WebSocket ping round trip
//   connection.js  one WebSocket: requests with ids, heartbeat, reconnect with backoff
//   room.js        the joined room: epoch/seq for recovery, state, members, chat
//   player.js      applies the room state to the <video>, drift correction, and turns
//                  user-initiated player events (not our own) into `playback` messages
//   members.js     the members panel: roles, status, drift, the room's spread; moderation
//   queue.js       the queue panel: add, remove, drag to reorder, play next, next at the end
//   readiness.js   what the player tells the room (status, drift reports), the waiting banner
//   ui.js          views, toasts, rendering
//   forms.js       what the forms and buttons do; entering the page after sign-in
//   hook.js        window.synctv, a small read-only hook for the browser tests
import { refresher, session } from './js/api.js';
import { enter } from './js/forms.js';
import './js/hook.js';
import { servers } from './js/servers.js';
import { renderMe, show } from './js/ui.js';
import { $ } from './js/util.js';

await servers.init();
if (session.load()) {
  refresher.schedule();
  enter();
} else {
  renderMe();
  show('view-login');
  $('login-name').focus();
}
