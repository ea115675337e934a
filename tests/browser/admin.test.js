// The admin view (/admin) in a real browser: it asks for the server API key, refuses a
// wrong one, lists the nodes with region, connections, rooms and refusals and the rooms
// with their members (where the server lists them), and disconnects a user from there;
// all under the page's Content-Security-Policy (own scripts only), with no violation.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as h from './harness.js';

const KEY = 'admin-view-browser-test-key-0123456789abcdef';
let node;
let browser;

before(async () => {
  node = await h.startSynctv({
    name: 'admin',
    env: { SYNCTV__API__KEY: KEY, SYNCTV__CLUSTER__REGION: 'admin-region' },
  });
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.kill('SIGKILL');
});

test('the admin view lists nodes and rooms, kicks and disconnects', { timeout: 90000 }, async () => {
  const person = await h.openPerson(browser, node.base, 'frank');
  const roomId = await h.createRoom(person, 'watched by the admin');
  await person.waitForFunction(() => window.synctv.status() === 'connected', null, { timeout: 20000 });
  const frank = await person.evaluate(() => window.synctv.user());
  const guest = await h.openPerson(browser, node.base, 'gina');
  await h.openRoomLink(guest, node.base, roomId);
  const gina = await guest.evaluate(() => window.synctv.user());

  const admin = await h.newPage(browser, node.base, {
    init: () => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) =>
        window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`),
      );
    },
  });
  const resp = await admin.goto(`${node.base}/admin`);
  const csp = resp.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'(;|$)/, csp);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, csp);

  // A wrong key is refused, and the view stays closed.
  await admin.fill('#admin-key', 'x'.repeat(40));
  await admin.click('#admin-key-form button[type=submit]');
  await admin.waitForFunction(() => document.getElementById('admin-status').dataset.kind === 'error');
  assert.equal(await admin.isHidden('#admin-view'), true);

  await admin.fill('#admin-key', KEY);
  await admin.click('#admin-key-form button[type=submit]');
  await admin.waitForSelector('#admin-view:not([hidden])');
  const row = admin.locator('#nodes tbody tr');
  await row.first().waitFor();
  const cells = await row.first().locator('td').allTextContents();
  assert.equal(cells[1], 'admin-region', cells.join(' | '));
  assert.equal(cells[2], '2', `two connections: ${cells.join(' | ')}`);
  assert.equal(cells[3], '1', `one room: ${cells.join(' | ')}`);
  assert.match(cells[5], /^\d+$/, `refusals: ${cells.join(' | ')}`);
  const roomBox = admin.locator('.admin-room', { hasText: 'watched by the admin' });
  await roomBox.waitFor();
  // Members with their roles, where the server lists them (GET /api/v1/rooms/{id}/members).
  const listed = (await admin.request.get(`${node.base}/api/v1/rooms/${roomId}/members`)).ok();
  if (listed) {
    const owner = roomBox.locator(`tr[data-user="${frank.user_id}"]`);
    await owner.waitFor();
    assert.equal((await owner.locator('td').allTextContents())[2], 'owner');
    const member = roomBox.locator(`tr[data-user="${gina.user_id}"]`);
    await member.waitFor();
    assert.equal((await member.locator('td').allTextContents())[2], 'member');
  }
  await h.screenshot(admin, 'admin-view');

  if (listed) {
    // Kick gina from her row: she leaves the room, and her row goes.
    await roomBox.locator(`tr[data-user="${gina.user_id}"]`).getByRole('button', { name: 'Kick' }).click();
    await admin.waitForFunction(
      (id) => /^kicked (\S+) \(seq \d+\)$/.test(document.getElementById('admin-status').textContent)
        && document.getElementById('admin-status').textContent.includes(id),
      gina.user_id,
      { timeout: 15000 },
    );
    await roomBox.locator(`tr[data-user="${gina.user_id}"]`).waitFor({ state: 'detached', timeout: 15000 });
  }

  // Disconnect frank: from his row when the server lists members, else by id.
  const memberRow = roomBox.locator(`tr[data-user="${frank.user_id}"]`);
  if (await memberRow.count()) {
    await memberRow.getByRole('button', { name: 'Disconnect' }).click();
  } else {
    await admin.fill('#disconnect-user', frank.user_id);
    await admin.click('#disconnect-form button[type=submit]');
  }
  await admin.waitForFunction(
    (id) => document.getElementById('admin-status').textContent === `disconnected ${id}: 1 connection(s) closed`,
    frank.user_id,
    { timeout: 15000 },
  );
  assert.deepEqual(await admin.evaluate(() => window.__csp), [], 'no CSP violation');
  assert.deepEqual(admin.errors, []);
  await admin.context().close();
  await person.context().close();
  await guest.context().close();
});
