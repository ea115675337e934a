// Waiting for everyone (contract 1.1), in Chromium: Bob's media is served slowly (his page's
// media requests are answered in 256 KB pieces, each held back as long as the test says),
// so after a seek to where he has nothing buffered his player needs seconds. The room
// waits for him (Alice's page says "waiting for bob…"), then both start together; a page
// that never gets ready holds the room for the timeout and no longer; and someone who may
// control playback can start anyway.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, test } from 'node:test';
import * as h from './harness.js';

const READY_TIMEOUT_S = 4;
const START_TOGETHER_MS = 50;
const CHUNK = 256 * 1024;

let node;
let media;
let bytes;
let browser;

before(async () => {
  const file = await h.testVideo();
  bytes = fs.readFileSync(file);
  media = await h.serveVideo(file);
  node = await h.startSynctv({ name: 'waiting', env: { SYNCTV__ROOMS__READY_TIMEOUT_SECS: String(READY_TIMEOUT_S) } });
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.kill('SIGKILL');
  await media?.close();
});

/**
 * Serves `page`'s media requests itself, a piece at a time: `slow.ms` before each piece
 * (from byte `slow.fromByte` on; only before the first such piece, with `slow.once`), and none at all while `slow.never`.
 */
async function throttleMedia(page) {
  const slow = { ms: 0, once: false, fromByte: 0, never: false };
  await page.route(
    (u) => u.href.startsWith(media.url),
    async (route) => {
      const r = /bytes=(\d+)-(\d*)/.exec(route.request().headers().range || '');
      const start = r ? Number(r[1]) : 0;
      const end = Math.min(bytes.length - 1, start + CHUNK - 1, r && r[2] ? Number(r[2]) : Infinity);
      if (slow.never) return; // the request is never answered
      const hold = start >= slow.fromByte ? slow.ms : 0;
      if (hold && slow.once) slow.ms = 0; // one slow piece: the seek's target, then the link is fast again
      if (hold) await h.sleep(hold); // the slow link: this piece arrives this late
      await route
        .fulfill({
          status: 206,
          headers: { 'content-type': 'video/mp4', 'accept-ranges': 'bytes', 'content-range': `bytes ${start}-${end}/${bytes.length}` },
          body: bytes.subarray(start, end + 1),
        })
        .catch(() => {}); // the page moved on (another seek) and dropped the request
    },
  );
  return slow;
}

/** Alice and Bob (slow media) in a new room, the test video playing on both. */
async function playingRoom(title) {
  const alice = await h.openPerson(browser, node.base, 'alice');
  const id = await h.createRoom(alice, title);
  const bob = await h.newPage(browser, node.base);
  const slow = await throttleMedia(bob);
  await bob.goto(`${node.base}/#room=${id}`);
  await bob.fill('#login-name', 'bob');
  await bob.click('#login-form button[type=submit]');
  await h.waitJoined(bob);
  await h.setMedia(alice, media.url);
  await Promise.all([h.waitMediaReady(alice, media.url), h.waitMediaReady(bob, media.url)]);
  await h.act(alice, () => document.getElementById('btn-play').click());
  await h.whenTrue(bob, (v) => !v.paused && v.currentTime > 0, {}, 15000);
  await h.untilAgree(alice, bob, 0.15, 30000);
  return { alice, bob, id, slow, close: async () => Promise.all([alice.context().close(), bob.context().close()]) };
}

/**
 * Arms a watch in `page` before the change: every 2 ms its player is checked, and the
 * wall-clock ms at which it first plays past `from` seconds is kept. Read it with
 * `startedPast`. (Polling from the test instead would start late when the machine is slow.)
 */
async function watchStart(page, from) {
  await page.evaluate((f) => {
    window.startedPast = null;
    const v = document.getElementById('player');
    const timer = setInterval(() => {
      if (!v.paused && !v.seeking && v.currentTime > f + 0.02) {
        window.startedPast = performance.timeOrigin + performance.now();
        clearInterval(timer);
      }
    }, 2);
  }, from);
}
const startedPast = async (page, timeout) => (await page.waitForFunction(() => window.startedPast, null, { timeout })).jsonValue();

test('after a seek the room waits for the slow page, then both start together', { timeout: 120000 }, async () => {
  const { alice, bob, id, slow, close } = await playingRoom('waiting night');
  // The piece at the seek's target takes 3 s; once Bob's player has it, the rest streams
  // fast, so the start measures how the two pages start, not a stall after it.
  Object.assign(slow, { ms: 3000, once: true, fromByte: Math.floor(bytes.length * 0.75) });
  await Promise.all([watchStart(alice, 100), watchStart(bob, 100)]);
  const seekAt = await h.act(alice, (v) => { v.currentTime = 100; });
  // Alice's page says whom the room waits for.
  await alice.waitForFunction(() => /^waiting for ([^…]* and )?bob…$/.test(document.getElementById('waiting-text').textContent) && !document.getElementById('waiting').hidden, null, { timeout: 10000 });
  await h.screenshot(alice, 'waiting-for-bob');
  const [aliceStart, bobStart] = await Promise.all([startedPast(alice, 30000), startedPast(bob, 30000)]);
  const apart = Math.abs(aliceStart - bobStart);
  const waited = Math.min(aliceStart, bobStart) - seekAt;
  const events = (await (await fetch(`${node.base}/api/v1/rooms/${id}/events?after=0&limit=1000`)).json()).events;
  const start = events.filter((e) => e.kind === 'playback' && e.data.waited === true);
  h.record('waiting_slow_page', { waited_ms: Math.round(waited), started_apart_ms: Math.round(apart) });
  assert.equal(start.length, 1, `one start decision: ${JSON.stringify(start)}`);
  assert.ok(waited >= 2500, `the room waited ${Math.round(waited)} ms for a player 3 s from ready`);
  assert.ok(apart <= START_TOGETHER_MS, `the players started ${Math.round(apart)} ms apart`);
  assert.equal(await alice.locator('#waiting').isHidden(), true);
  await close();
});

test('a page that never gets ready holds the room for the timeout, no longer', { timeout: 120000 }, async () => {
  const { alice, id, slow, close } = await playingRoom('never ready');
  slow.never = true;
  await watchStart(alice, 100);
  const seekAt = await h.act(alice, (v) => { v.currentTime = 100; });
  await alice.waitForFunction(() => !document.getElementById('waiting').hidden, null, { timeout: 10000 });
  const started = await startedPast(alice, (READY_TIMEOUT_S + 10) * 1000);
  const held = started - seekAt;
  h.record('waiting_never_ready', { timeout_ms: READY_TIMEOUT_S * 1000, held_ms: Math.round(held) });
  // The timeout runs from the start of the wait (the seek's commit); the start may be set
  // up to 1 s ahead so that every member starts together.
  assert.ok(held >= READY_TIMEOUT_S * 1000 - 200, `held only ${Math.round(held)} ms`);
  assert.ok(held <= (READY_TIMEOUT_S + 1.5) * 1000, `held ${Math.round(held)} ms for a ${READY_TIMEOUT_S} s timeout`);
  const events = (await (await fetch(`${node.base}/api/v1/rooms/${id}/events?after=0&limit=1000`)).json()).events;
  assert.equal(events.filter((e) => e.kind === 'playback' && e.data.waited === true).length, 1);
  await close();
});

test('someone who may control playback can start anyway', { timeout: 120000 }, async () => {
  const { alice, slow, close } = await playingRoom('start anyway');
  slow.never = true;
  await watchStart(alice, 100);
  await h.act(alice, (v) => { v.currentTime = 100; });
  await alice.waitForSelector('#start-anyway:not([hidden])', { timeout: 10000 });
  const clicked = await h.act(alice, () => document.getElementById('start-anyway').click());
  const started = await startedPast(alice, 10000);
  h.record('waiting_start_anyway_ms', Math.round(started - clicked));
  assert.ok(started - clicked < READY_TIMEOUT_S * 1000 - 1000, `started ${Math.round(started - clicked)} ms after "start anyway"`);
  await close();
});
