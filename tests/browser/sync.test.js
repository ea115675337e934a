// Watch-together in a real browser against one real synctv node: two people in one room
// follow each other's play, pause, seek and speed; chat reaches both; a late joiner lands
// at the room's position; a password is asked for; a server restart is survived.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.js';

const FOLLOW_MS = 500; // the other page follows within this
const AGREE_S = 0.15; // and the two positions then agree within this

let node;
let media;
let browser;

before(async () => {
  const file = await h.testVideo();
  media = await h.serveVideo(file);
  node = await h.startSynctv({ name: 'single' });
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.kill('SIGKILL');
  await media?.close();
});

/** Bob's player is at `target` seconds advanced since `t0` at `rate` (within 250 ms). */
const nearTarget = (v, synctv, a) =>
  !v.seeking && Math.abs(v.currentTime - (a.target + ((performance.timeOrigin + performance.now() - a.t0) / 1000) * a.rate)) < 0.25;

/**
 * Alice's new room `title` with Bob in it, each on a page of their own; with `playing`, the
 * test video is set and playing on both. Every test makes its own, so none depends on
 * another having run.
 */
async function roomOfTwo(title, { playing = false } = {}) {
  const alice = await h.openPerson(browser, node.base, 'alice');
  const id = await h.createRoom(alice, title);
  const bob = await h.openPerson(browser, node.base, 'bob', { hash: `#room=${id}` });
  await h.waitJoined(bob);
  for (const p of [alice, bob]) await p.waitForFunction(() => window.synctv.members().join() === 'alice,bob');
  if (playing) {
    await h.setMedia(alice, media.url);
    await Promise.all([h.waitMediaReady(alice, media.url), h.waitMediaReady(bob, media.url)]);
    await h.act(alice, () => document.getElementById('btn-play').click());
    await h.whenTrue(bob, (v) => !v.paused && v.currentTime > 0, {}, 15000);
    await h.untilAgree(alice, bob, AGREE_S);
  }
  const close = async () => {
    await alice.context().close();
    await bob.context().close();
  };
  return { alice, bob, id, close };
}

test('two members in one room follow play, seek, speed and pause', { timeout: 120000 }, async () => {
  const { alice, bob, id: roomId, close } = await roomOfTwo('movie night');
  await h.setMedia(alice, media.url);
  await Promise.all([h.waitMediaReady(alice, media.url), h.waitMediaReady(bob, media.url)]);

  const follow = {};
  const settle = {};
  const agree = {};
  // After each change: the other page follows (measured), the two settle into agreement
  // (waited for, however long the machine takes), and then stay together (measured).
  const step = async (name, who, other, action, arg, followed, followArg) => {
    const t0 = await h.act(who, action, arg);
    const t1 = await h.whenTrue(other, followed, { ...followArg, t0 }, 5000);
    follow[name] = Math.round(t1 - t0);
    settle[name] = await h.untilAgree(alice, bob, AGREE_S);
    agree[name] = Math.round((await h.worstGap(alice, bob)) * 1000);
  };

  // Alice presses the page's Play button.
  await step('play', alice, bob, () => document.getElementById('btn-play').click(), null, (v) => !v.paused && v.currentTime > 0);
  // Alice drags the native scrubber to 40 s while playing.
  await step('seek_playing', alice, bob, (v) => { v.currentTime = 40; }, null, nearTarget, { target: 40, rate: 1 });
  // Alice picks 1.5x in the speed menu.
  await step(
    'rate',
    alice,
    bob,
    () => {
      const s = document.getElementById('rate-select');
      s.value = '1.5';
      s.dispatchEvent(new Event('change'));
    },
    null,
    (v) => Math.abs(v.playbackRate - 1.5) < 0.2,
    {},
  );
  // Alice pauses with the native controls.
  await step('pause', alice, bob, (v) => v.pause(), null, (v) => v.paused, {});
  // Alice seeks to 10 s while paused.
  await step('seek_paused', alice, bob, (v) => { v.currentTime = 10; }, null, (v) => v.paused && !v.seeking && Math.abs(v.currentTime - 10) < 0.05, {});
  // Bob, not Alice, starts playback again with the native controls.
  await step('play_by_other', bob, alice, (v) => v.play(), null, (v) => !v.paused && v.currentTime > 10, {});

  h.record('follow_ms', follow);
  h.record('settled_after_ms', settle);
  h.record('agreement_ms', agree);
  await h.screenshot(alice, 'two-pages-alice');
  await h.screenshot(bob, 'two-pages-bob');

  for (const [k, ms] of Object.entries(follow)) assert.ok(ms <= FOLLOW_MS, `${k}: followed after ${ms} ms (> ${FOLLOW_MS})`);
  for (const [k, ms] of Object.entries(agree)) assert.ok(Math.abs(ms) <= AGREE_S * 1000, `${k}: positions ${ms} ms apart`);

  const state = await bob.evaluate(() => window.synctv.state());
  assert.equal(state.playing, true);
  assert.equal(state.rate, 1.5);

  // No echoes: the history holds exactly the six changes the two people made, no more.
  // The pages report their players' status (1.1), so after a seek while playing the room
  // waits for them and then starts by itself: those starts are the room's (`by` null,
  // `waited`), not anyone's echo.
  const res = await fetch(`${node.base}/api/v1/rooms/${roomId}/events?limit=1000`);
  const { events } = await res.json();
  const playback = events.filter((e) => e.kind === 'playback');
  const actions = playback.filter((e) => e.by).map((e) => `${e.by.name}:${e.data.action}`);
  assert.deepEqual(actions, ['alice:play', 'alice:seek', 'alice:rate', 'alice:pause', 'alice:seek', 'bob:play']);
  for (const e of playback.filter((x) => !x.by)) assert.equal(e.data.waited, true, JSON.stringify(e));
  await close();
});

test('chat appears on both pages', { timeout: 60000 }, async () => {
  const { alice, bob, close } = await roomOfTwo('chat room');
  await h.sendChat(alice, 'hello from alice');
  await h.sendChat(bob, 'hi alice, bob here');
  const both = ['alice: hello from alice', 'bob: hi alice, bob here'];
  for (const p of [alice, bob]) {
    await p.waitForFunction(
      (want) => window.synctv.chat().map((c) => `${c.name}: ${c.text}`).join('|') === want.join('|'),
      both,
      { timeout: 5000 },
    );
    const shown = await p.locator('#chat-log li').allInnerTexts();
    assert.equal(shown.length, 2);
    assert.match(shown[1], /hi alice, bob here/);
  }
  await close();
});

test('a late joiner lands at the room position', { timeout: 90000 }, async () => {
  const { alice, bob, id: roomId, close } = await roomOfTwo('late night', { playing: true });
  await h.sendChat(alice, 'hello from alice');
  await bob.waitForFunction(() => window.synctv.chat().length === 1);
  await h.sendChat(bob, 'hi alice, bob here');
  await alice.waitForFunction(() => window.synctv.chat().length === 2);
  const carol = await h.openPerson(browser, node.base, 'carol', { hash: `#room=${roomId}` });
  await h.waitJoined(carol);
  await h.whenTrue(carol, (v) => !v.paused && v.readyState >= 2 && !v.seeking, {}, 15000);
  const landed = await h.gap(carol, alice);
  const settledAfter = await h.untilAgree(carol, alice, AGREE_S);
  const settled = await h.worstGap(carol, alice);
  h.record('late_joiner_ms', { landed: Math.round(landed * 1000), settled_after: settledAfter, then: Math.round(settled * 1000) });
  assert.ok(Math.abs(landed) < 0.5, `landed ${Math.round(landed * 1000)} ms off`);
  assert.ok(Math.abs(settled) <= AGREE_S, `settled ${Math.round(settled * 1000)} ms off`);
  for (const p of [alice, bob, carol]) await p.waitForFunction(() => window.synctv.members().join() === 'alice,bob,carol');
  assert.deepEqual((await carol.evaluate(() => window.synctv.chat())).map((c) => c.text), ['hello from alice', 'hi alice, bob here']);
  await h.sendChat(carol, 'carol joined late');
  await alice.waitForFunction(() => window.synctv.chat().length === 3 && document.querySelectorAll('#chat-log li').length === 3);
  const shot = await h.screenshot(alice, 'room-three-members');
  // The picture for the README.
  fs.mkdirSync(path.join(h.artifacts, 'docs'), { recursive: true });
  fs.copyFileSync(shot, path.join(h.artifacts, 'docs', 'screenshot.png'));
  await carol.context().close();
  await close();
});

test('a password-protected room asks for the password', { timeout: 30000 }, async () => {
  const dave = await h.openPerson(browser, node.base, 'dave');
  const id = await h.createRoom(dave, 'secret club', { password: 's3cret' });
  const erin = await h.openPerson(browser, node.base, 'erin', { hash: `#room=${id}` });
  await erin.waitForSelector('#view-password:not([hidden])');
  await erin.fill('#password-input', 'wrong');
  await erin.click('#password-form button[type=submit]');
  await erin.waitForSelector('#password-error:not([hidden])');
  assert.match(await erin.textContent('#password-error'), /wrong password/);
  await h.screenshot(erin, 'wrong-password');
  await erin.fill('#password-input', 's3cret');
  await erin.click('#password-form button[type=submit]');
  await h.waitJoined(erin);
  await dave.waitForFunction(() => window.synctv.members().join() === 'dave,erin');
  await dave.context().close();
  await erin.context().close();
});

test('in an owner-controlled room, only the owner moves playback', { timeout: 40000 }, async () => {
  const olga = await h.openPerson(browser, node.base, 'olga');
  const id = await h.createRoom(olga, 'olga decides', { control: 'owner' });
  const pete = await h.openPerson(browser, node.base, 'pete', { hash: `#room=${id}` });
  await h.waitJoined(pete);
  await h.setMedia(olga, media.url);
  await Promise.all([h.waitMediaReady(olga, media.url), h.waitMediaReady(pete, media.url)]);
  assert.equal(await pete.isDisabled('#btn-play'), true, 'the play button is off for a non-owner');
  // Pete presses play on the native controls anyway: nothing is sent, his player goes back.
  await h.act(pete, (v) => v.play());
  await h.whenTrue(pete, (v) => v.paused && Math.abs(v.currentTime) < 0.05, {}, 2000);
  assert.ok((await pete.evaluate(() => window.synctv.errors())).some((e) => /only the room owner/.test(e)));
  assert.equal((await olga.evaluate(() => window.synctv.state())).playing, false);
  // Olga plays; Pete follows.
  const t0 = await h.act(olga, () => document.getElementById('btn-play').click());
  const t1 = await h.whenTrue(pete, (v) => !v.paused, {}, 5000);
  assert.ok(t1 - t0 <= FOLLOW_MS, `followed after ${Math.round(t1 - t0)} ms`);
  const res = await fetch(`${node.base}/api/v1/rooms/${id}/events?limit=1000`);
  const actions = (await res.json()).events.filter((e) => e.kind === 'playback').map((e) => `${e.by.name}:${e.data.action}`);
  assert.deepEqual(actions, ['olga:play']);
  await olga.context().close();
  await pete.context().close();
});

test('a page whose stored token the server no longer takes signs in again', { timeout: 30000 }, async () => {
  const page = await h.newPage(browser, node.base, {
    init: () => {
      if (!sessionStorage.getItem('seeded')) {
        sessionStorage.setItem('seeded', '1');
        const stale = { token: 'not-a-token', user_id: 'u-stale', name: 'frank', expires_at: Date.now() + 86400000 };
        localStorage.setItem('synctv.session', JSON.stringify(stale));
      }
    },
  });
  await page.goto(`${node.base}/`);
  await page.waitForFunction(() => window.synctv.status() === 'connected', null, { timeout: 20000 });
  const user = await page.evaluate(() => window.synctv.user());
  assert.equal(user.name, 'frank');
  assert.notEqual(user.user_id, 'u-stale');
  await page.context().close();
});

test('the pages reconnect, recover and stay in sync across a server restart', { timeout: 120000 }, async () => {
  const { alice, bob, close } = await roomOfTwo('restart night', { playing: true });
  const before = await alice.evaluate(() => window.synctv.seq());
  await node.kill('SIGTERM');
  await alice.waitForFunction(() => window.synctv.status() !== 'connected', null, { timeout: 15000 });
  const shot = await h.screenshot(alice, 'reconnecting');
  assert.ok(shot);
  node = await h.startSynctv({ name: 'single-restarted', dir: node.dir, port: node.port, dbUrl: node.dbUrl });
  for (const p of [alice, bob]) {
    await p.waitForFunction(() => window.synctv.status() === 'connected' && window.synctv.joined(), null, { timeout: 30000 });
  }
  const afterSeq = await alice.evaluate(() => window.synctv.seq());
  assert.ok(afterSeq.seq >= before.seq, 'the history went on from where it was');
  // Still playing from the same timeline, and the two pages agree again.
  h.record('agree_after_restart_ms', await h.untilAgree(alice, bob, AGREE_S, 30000));
  const g = await h.worstGap(alice, bob);
  h.record('after_restart_ms', Math.round(g * 1000));
  assert.ok(Math.abs(g) <= AGREE_S, `after the restart the pages are ${Math.round(g * 1000)} ms apart`);
  const t0 = await h.act(bob, (v) => v.pause());
  const t1 = await h.whenTrue(alice, (v) => v.paused, {}, 5000);
  h.record('follow_after_restart_ms', Math.round(t1 - t0));
  assert.ok(t1 - t0 <= FOLLOW_MS);
  await h.sendChat(alice, 'still here');
  await bob.waitForFunction(() => window.synctv.chat().some((c) => c.text === 'still here'));
  for (const p of [alice, bob]) assert.deepEqual(p.errors, [], `no script errors on ${p.person}'s page`);
  await close();
});
