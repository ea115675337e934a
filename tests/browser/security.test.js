// The page's safety in a real browser (protocol 1.1, "Connecting safely"): it connects
// with single-use tickets and never puts its token in a URL, runs under its
// Content-Security-Policy with no violation while it plays media from another origin,
// refreshes its token before it expires, and a logout closes every tab of that token.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as h from './harness.js';

let node;
let media;
let browser;

before(async () => {
  const file = await h.testVideo();
  media = await h.serveVideo(file);
  // Short-lived tokens, so that the page has to refresh its token during the test.
  node = await h.startSynctv({ name: 'security', env: { SYNCTV__AUTH__TOKEN_TTL_SECS: '90' } });
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  await node?.kill('SIGKILL');
  await media?.close();
});

/** Records the page's WebSocket URLs and its CSP violations. */
async function watched(page) {
  page.sockets = [];
  page.on('websocket', (ws) => page.sockets.push(ws.url()));
  await page.context().addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
  });
  return page;
}

test('the page connects with tickets and plays media under its CSP', { timeout: 90000 }, async () => {
  const page = await watched(await h.newPage(browser, node.base));
  const resp = await page.goto(`${node.base}/`);
  const csp = resp.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'/);
  assert.equal(resp.headers()['x-content-type-options'], 'nosniff');
  await page.fill('#login-name', 'carol');
  await page.click('#login-form button[type=submit]');
  await h.createRoom(page, 'safe room');
  await h.setMedia(page, media.url);
  await h.waitMediaReady(page, media.url);
  await h.sendChat(page, 'hello under a policy');
  await page.waitForFunction(() => window.synctv.chat().some((c) => c.text === 'hello under a policy'));

  assert.ok(page.sockets.length >= 1, 'the page opened a WebSocket');
  for (const url of page.sockets) {
    assert.match(url, /\/ws\?ticket=[A-Za-z0-9_-]{43}$/, url);
    assert.doesNotMatch(url, /token=/, url);
  }
  assert.deepEqual(await page.evaluate(() => window.__csp), [], 'no CSP violation');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the page refreshes its token before it expires', { timeout: 90000 }, async () => {
  const page = await h.openPerson(browser, node.base, 'dave');
  await page.waitForFunction(() => window.synctv.status() === 'connected', null, { timeout: 20000 });
  const first = await page.evaluate(() => ({ user: window.synctv.user(), exp: window.synctv.tokenExpiresAt() }));
  // 90 s tokens are refreshed at half their remaining life, about 45 s in.
  await page.waitForFunction((exp) => window.synctv.tokenExpiresAt() > exp, first.exp, { timeout: 70000 });
  const later = await page.evaluate(() => ({ user: window.synctv.user(), exp: window.synctv.tokenExpiresAt() }));
  assert.deepEqual(later.user, first.user, 'the same user');
  const token = await page.evaluate(() => JSON.parse(localStorage.getItem('synctv.session')).token);
  const res = await fetch(`${node.base}/api/v1/auth/ticket`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 201, 'the refreshed token works');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('logging out revokes the token and closes the other tabs', { timeout: 60000 }, async () => {
  const first = await h.openPerson(browser, node.base, 'erin');
  const id = await h.createRoom(first, 'tabs');
  const second = await first.context().newPage();
  second.errors = [];
  second.on('pageerror', (e) => second.errors.push(String(e)));
  await h.openRoomLink(second, node.base, id);
  const token = await first.evaluate(() => JSON.parse(localStorage.getItem('synctv.session')).token);

  await first.click('#logout');
  await first.waitForSelector('#view-login:not([hidden])');
  // The other tab's connection was closed with 4401: it forgets the token and asks for a name.
  await second.waitForSelector('#view-login:not([hidden])', { timeout: 15000 });
  const res = await fetch(`${node.base}/api/v1/auth/ticket`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 401, 'the token was revoked');
  assert.deepEqual([...first.errors, ...second.errors], []);
  await first.context().close();
});
