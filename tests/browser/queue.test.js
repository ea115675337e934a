// The queue panel (contract 1.1, "The queue"): two pages add, reorder by dragging, remove
// and play next, and see the same queue; when a short clip ends on both pages at once the
// room moves on exactly once (`next` with `if_version`: one page wins, the other's is a
// conflict), so the second queued item is still there afterwards.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.js';

let node;
let media;
let clip;
let browser;

before(async () => {
  media = await h.serveVideo(await h.testVideo());
  const dir = await h.tempDir('clip');
  const file = path.join(dir, 'clip.mp4');
  h.makeVideo(file, 3);
  clip = await h.serveVideo(file);
  node = await h.startSynctv({ name: 'queue' });
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.kill('SIGKILL');
  await media?.close();
  await clip?.close();
});

const titles = (page) => page.evaluate(() => [...document.querySelectorAll('#queue li .title')].map((t) => t.textContent));

async function queueAdd(page, url, title) {
  await page.fill('#queue-url', url);
  await page.fill('#queue-title', title);
  await page.click('#queue-form button[type=submit]');
}

async function sameQueue(pages, want) {
  for (const p of pages) {
    await p.waitForFunction((w) => [...document.querySelectorAll('#queue li .title')].map((t) => t.textContent).join('|') === w.join('|'), want, { timeout: 10000 });
  }
}

test('two pages share one queue: add, drag to reorder, remove, play next, and move on once at the end', { timeout: 180000 }, async () => {
  const alice = await h.openPerson(browser, node.base, 'alice');
  const id = await h.createRoom(alice, 'queue night');
  const bob = await h.openPerson(browser, node.base, 'bob', { hash: `#room=${id}` });
  await h.waitJoined(bob);
  const pages = [alice, bob];

  await queueAdd(alice, `${media.url}?a`, 'first');
  await sameQueue(pages, ['first']);
  await queueAdd(bob, `${media.url}?b`, 'second');
  await queueAdd(alice, `${media.url}?c`, 'third');
  await sameQueue(pages, ['first', 'second', 'third']);

  // Bob drags "third" onto "first": it becomes the first item, on both pages.
  await bob.locator('#queue li', { hasText: 'third' }).dragTo(bob.locator('#queue li', { hasText: 'first' }));
  await sameQueue(pages, ['third', 'first', 'second']);
  // Alice removes "first".
  await alice.locator('#queue li', { hasText: 'first' }).locator('.remove').click();
  await sameQueue(pages, ['third', 'second']);
  // "Play next" makes the first item the media and takes it off the queue.
  await bob.click('#queue-next');
  await sameQueue(pages, ['second']);
  for (const p of pages) await p.waitForFunction((u) => window.synctv.state().media?.url === u, `${media.url}?c`, { timeout: 10000 });

  // A 3 s clip plays with "second" and then "fourth" queued; at its end both pages ask for
  // `next` with the version they hold, and the room moves on exactly once.
  await h.setMedia(alice, clip.url);
  await queueAdd(alice, `${media.url}?d`, 'fourth');
  await sameQueue(pages, ['second', 'fourth']);
  await Promise.all(pages.map((p) => h.waitMediaReady(p, clip.url)));
  const before = (await (await fetch(`${node.base}/api/v1/rooms/${id}/events?after=0&limit=1000`)).json()).events.length;
  await h.act(alice, () => document.getElementById('btn-play').click());
  for (const p of pages) await p.waitForFunction((u) => window.synctv.state().media?.url === u, `${media.url}?b`, { timeout: 20000 });
  await sameQueue(pages, ['fourth']);
  const events = (await (await fetch(`${node.base}/api/v1/rooms/${id}/events?after=0&limit=1000`)).json()).events.slice(before);
  const moves = events.filter((e) => e.kind === 'media');
  assert.equal(moves.length, 1, `one media change at the end: ${JSON.stringify(moves)}`);
  assert.equal(moves[0].data.from_queue.title, 'second');
  // Playing stays as it was: the room plays on with the next item, once both players
  // have it (the pages report their status, so the room waits for them first).
  const st = moves[0].data.state;
  assert.ok(st.playing || (st.waiting_for || []).length > 0, `neither playing nor waiting: ${JSON.stringify(st)}`);
  for (const p of pages) await h.whenTrue(p, (v) => !v.paused && v.currentTime > 0.1, {}, 20000);
  await h.screenshot(alice, 'queue');
  assert.deepEqual(await titles(bob), ['fourth']);
  for (const p of pages) assert.deepEqual(await p.evaluate(() => window.synctv.errors()), []);
  for (const p of pages) await p.context().close();
});
