// Rooms people run (contract 1.1, "Roles and moderation"), on the page: the owner of a room
// where the owner and admins control playback makes Bob an admin from the members panel;
// Bob may then play, Carol may not; Bob kicks Carol with a ban and Carol is told so
// plainly, and again when she tries the room's link; the owner mutes Dave, whose chat box
// says so, and lifts it.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as h from './harness.js';

let node;
let media;
let browser;

before(async () => {
  media = await h.serveVideo(await h.testVideo());
  node = await h.startSynctv({ name: 'moderation' });
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.kill('SIGKILL');
  await media?.close();
});

/** The row of `name` in `page`'s members panel. */
const row = (page, name) => page.locator('#members li', { has: page.locator('.name', { hasText: new RegExp(`^${name}$`) }) });

test('the owner makes an admin, an admin kicks with a ban, the owner mutes; each person is told plainly', { timeout: 180000 }, async () => {
  const owner = await h.openPerson(browser, node.base, 'olivia');
  const id = await h.createRoom(owner, 'hosted night', { control: 'hosts' });
  const [bob, carol, dave] = await Promise.all(
    ['bob', 'carol', 'dave'].map((n) => h.openPerson(browser, node.base, n, { hash: `#room=${id}` })),
  );
  for (const p of [bob, carol, dave]) await h.waitJoined(p);
  await owner.waitForFunction(() => window.synctv.members().join() === 'bob,carol,dave,olivia', null, { timeout: 15000 });
  await h.setMedia(owner, media.url);
  await Promise.all([owner, bob, carol].map((p) => h.waitMediaReady(p, media.url)));

  // Roles as everyone sees them: the owner is marked, the others are members; only the
  // owner has moderation controls, and no one has them on their own row.
  assert.equal(await row(bob, 'olivia').locator('.role').textContent(), 'owner');
  assert.equal(await row(owner, 'bob').locator('.member-actions .make-admin').count(), 1);
  assert.equal(await row(owner, 'olivia').locator('.member-actions').count(), 0);
  assert.equal(await row(bob, 'carol').locator('.member-actions').count(), 0);
  // In a room the owner and admins control, a member cannot play.
  assert.equal(await bob.locator('#btn-play').isDisabled(), true);

  // The owner makes Bob an admin: Bob's page knows it, and lets him play.
  await row(owner, 'bob').locator('.make-admin').click();
  await bob.waitForFunction(() => window.synctv.role() === 'admin', null, { timeout: 10000 });
  await owner.waitForFunction(() => [...document.querySelectorAll('#members li')].some((li) => li.dataset.role === 'admin'), null, { timeout: 10000 });
  await bob.waitForFunction(() => !document.getElementById('btn-play').disabled, null, { timeout: 10000 });
  await h.act(bob, () => document.getElementById('btn-play').click());
  await h.whenTrue(carol, (v) => !v.paused, {}, 10000);
  assert.equal(await carol.locator('#btn-play').isDisabled(), true);
  // An admin may moderate members, not give roles, and not touch the owner.
  assert.equal(await row(bob, 'carol').locator('.kick').count(), 1);
  assert.equal(await row(bob, 'carol').locator('.make-admin').count(), 0);
  assert.equal(await row(bob, 'olivia').locator('.member-actions').count(), 0);

  // Bob kicks Carol with a ban of an hour: Carol is back in the lobby, told who and until when.
  await row(bob, 'carol').locator('.ban-len').selectOption('3600');
  await row(bob, 'carol').locator('.kick').click();
  await carol.waitForSelector('#notice:not([hidden])', { timeout: 10000 });
  const told = await carol.locator('#notice').textContent();
  assert.match(told, /bob removed you from “hosted night”\. You are banned from it until /, told);
  assert.equal(await carol.evaluate(() => window.synctv.room()), null);
  await owner.waitForFunction(() => !window.synctv.members().includes('carol'), null, { timeout: 10000 });
  // Her link no longer lets her in, and the page says why.
  await carol.goto(`${node.base}/#room=${id}`);
  await carol.waitForFunction(() => /You are banned from “hosted night” until /.test(document.getElementById('notice').textContent), null, { timeout: 10000 });
  assert.equal(await carol.evaluate(() => window.synctv.joined()), false);

  // The owner mutes Dave for five minutes: his chat box says so; lifting it gives it back.
  await row(owner, 'dave').locator('.mute-len').selectOption('300');
  await row(owner, 'dave').locator('.mute').click();
  await dave.waitForFunction(() => window.synctv.muted() && document.getElementById('chat-input').disabled, null, { timeout: 10000 });
  assert.match(await dave.locator('#chat-input').getAttribute('placeholder'), /You are muted here until /);
  await owner.waitForFunction(() => [...document.querySelectorAll('#members li')].some((li) => /muted/.test(li.querySelector('.status').textContent)), null, { timeout: 10000 });
  await h.screenshot(owner, 'moderation-owner');
  await row(owner, 'dave').locator('.unmute').click();
  await dave.waitForFunction(() => !window.synctv.muted() && !document.getElementById('chat-input').disabled, null, { timeout: 10000 });
  await h.sendChat(dave, 'thanks');
  await owner.waitForFunction(() => window.synctv.chat().some((c) => c.text === 'thanks'), null, { timeout: 10000 });
  assert.deepEqual(await owner.evaluate(() => window.synctv.errors()), []);
  for (const p of [owner, bob, carol, dave]) await p.context().close();
});
