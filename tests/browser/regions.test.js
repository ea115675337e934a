// Two regions in a real browser: east (two nodes) near the browser, west (one node) behind
// a link that adds 40 ms each way (an 80 ms round trip), each region on its own
// nats-server, the two joined by gateways over a link of the same length, all nodes on one
// database. Every address comes from the nodes' own /config.json. Alice's page measures
// the round trip to every node and picks east; then east dies whole (kill -9 of both
// nodes and of east's nats-server) while Bob, in west, goes on chatting and pausing. Alice's
// page fails over to west, recovers every acked event in order, and is in step with Bob.
//
// Needs nats-server (scripts/test-browser installs it); SYNCTV_BROWSER_REGIONS=0 skips it.
import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.js';
import { REGION_LINK_DELAY_MS, startDelayProxy, startTwoRegions } from './regions.js';

const AGREE_S = 0.15;
/** One way between the browser and west: the far region. */
const FAR_MS = REGION_LINK_DELAY_MS;

let skip = process.env.SYNCTV_BROWSER_REGIONS === '0' ? 'SYNCTV_BROWSER_REGIONS=0' : null;
let regions;
let far; // the proxy that puts west 40 ms away from the browser
const east = [];
let west;
let media;
let browser;

before(async () => {
  if (skip) return;
  const dir = await h.tempDir('regions');
  regions = await startTwoRegions(dir);
  const ports = { east1: await h.freePort(), east2: await h.freePort(), west1: await h.freePort() };
  far = await startDelayProxy(ports.west1, FAR_MS, { name: 'far-west' });
  const publicUrls = [`http://127.0.0.1:${ports.east1}`, `http://127.0.0.1:${ports.east2}`, far.base];
  const dbUrl = process.env.SYNCTV_BROWSER_DATABASE_URL || `sqlite://${path.join(dir, 'regions.db')}?mode=rwc`;
  const shared = {
    SYNCTV__AUTH__JWT_SECRET: 'browser-regions-shared-secret-0123456789',
    SYNCTV__SERVER__PUBLIC_URLS: JSON.stringify(publicUrls),
  };
  const node = (name, region, port, extra = {}) =>
    h.startSynctv({
      name,
      dir,
      dbUrl,
      port,
      env: {
        ...shared,
        SYNCTV__NATS__URL: regions[region].url,
        SYNCTV__CLUSTER__REGION: region,
        SYNCTV__CLUSTER__NODE_ID: name,
        ...extra,
      },
    });
  east.push(await node('east-1', 'east', ports.east1), await node('east-2', 'east', ports.east2));
  // West is reached through the far link: that is the address it advertises.
  west = await node('west-1', 'west', ports.west1, { SYNCTV__CLUSTER__ADVERTISE_URL: far.base });
  // The page learns each node's region from the node list in /config.json: wait for all three.
  await h.waitUntil('east-1 lists all three nodes', async () => {
    const nodes = (await (await fetch(`${east[0].base}/config.json`)).json()).nodes || [];
    return nodes.length === 3;
  }, 30000);
  media = await h.serveVideo(await h.testVideo());
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const n of [...east, west]) await n?.kill('SIGKILL');
  await far?.kill();
  await regions?.stop();
  await media?.close();
});

/** Sends a chat line through the page's form; resolves with its seq once it is acked. */
async function say(page, text) {
  await h.sendChat(page, text);
  // The form is cleared by the ack, and the sender sees its event no later than its ack.
  const handle = await page.waitForFunction(
    (t) => document.getElementById('chat-input').value === '' && window.synctv.chat().find((c) => c.text === t),
    text,
    { timeout: 15000 },
  );
  return (await handle.jsonValue()).seq;
}

test('the page picks the nearer region by round trip and, when that region dies, fails over to the other without losing an acked event', { timeout: 180000 }, async (t) => {
  if (skip) {
    t.skip(`regions not tested: ${skip}`);
    return;
  }
  const alice = await h.openPerson(browser, east[0].base, 'alice');
  await alice.waitForFunction(() => window.synctv.status() === 'connected', null, { timeout: 30000 });
  // The page measured every node: east's at loopback speed, west's across the far link.
  const servers = await alice.evaluate(() => window.synctv.servers());
  assert.deepEqual(servers.map((s) => s.region).sort(), ['east', 'east', 'west'], JSON.stringify(servers));
  const westRtt = servers.find((s) => s.region === 'west').rtt;
  assert.ok(westRtt >= 2 * FAR_MS, `west measured ${westRtt} ms through an ${2 * FAR_MS} ms round trip`);
  for (const s of servers.filter((x) => x.region === 'east')) assert.ok(s.rtt < westRtt, `east ${s.rtt} ms, west ${westRtt} ms`);
  assert.equal(await alice.evaluate(() => window.synctv.region()), 'east');
  const chose = await alice.evaluate(() => window.synctv.server());

  const id = await h.createRoom(alice, 'two regions');
  // Bob lives in west: his page knows west's node alone, at loopback distance.
  const bob = await h.openPerson(browser, west.base, 'bob', { config: { servers: [west.base], region: 'west' }, hash: `#room=${id}` });
  await h.waitJoined(bob);
  for (const p of [alice, bob]) await p.waitForFunction(() => window.synctv.members().join() === 'alice,bob', null, { timeout: 15000 });
  await h.setMedia(alice, media.url);
  await Promise.all([h.waitMediaReady(alice, media.url), h.waitMediaReady(bob, media.url)]);
  await h.act(alice, () => document.getElementById('btn-play').click());
  await h.whenTrue(bob, (v) => !v.paused, {}, 10000);
  await h.untilAgree(alice, bob, AGREE_S, 30000);

  const acked = [];
  acked.push({ text: 'alice before', seq: await say(alice, 'alice before') });
  acked.push({ text: 'bob before', seq: await say(bob, 'bob before') });
  await alice.waitForFunction(() => window.synctv.chat().some((c) => c.text === 'bob before'), null, { timeout: 15000 });

  // East dies whole.
  const killedAt = Date.now();
  await Promise.all([...east.map((n) => n.kill('SIGKILL')), regions.east.kill()]);
  // Bob, in west, goes on: every line acked while Alice has no server.
  for (const text of ['bob during 1', 'bob during 2', 'bob during 3']) acked.push({ text, seq: await say(bob, text) });
  await h.act(bob, (v) => v.pause());
  await bob.waitForFunction(() => window.synctv.state().playing === false, null, { timeout: 15000 });

  await alice.waitForFunction(
    (farBase) => window.synctv.status() === 'connected' && window.synctv.server() === farBase && window.synctv.joined(),
    far.base,
    { timeout: 60000 },
  );
  const failedOverMs = Date.now() - killedAt;
  assert.equal(await alice.evaluate(() => window.synctv.region()), 'west');
  await h.screenshot(alice, 'regions-failover');

  // Every acked line, in the room's order, none twice: recovered from west.
  const want = [...acked].sort((a, b) => a.seq - b.seq).map((c) => c.text);
  await alice.waitForFunction((w) => window.synctv.chat().map((c) => c.text).join('|') === w.join('|'), want, { timeout: 15000 });
  // Bob's pause made during the outage holds on Alice's player too, at Bob's position.
  await h.whenTrue(alice, (v) => v.paused, {}, 15000);
  await h.untilAgree(alice, bob, AGREE_S, 30000);

  // And Alice goes on from the far region: control and chat flow both ways again.
  acked.push({ text: 'alice after', seq: await say(alice, 'alice after') });
  await bob.waitForFunction(() => window.synctv.chat().some((c) => c.text === 'alice after'), null, { timeout: 15000 });
  const t0 = await h.act(bob, () => document.getElementById('btn-play').click());
  const t1 = await h.whenTrue(alice, (v) => !v.paused, {}, 10000);
  const settled = await h.untilAgree(alice, bob, AGREE_S, 30000);
  const gapAfter = await h.worstGap(alice, bob);

  // The durable history holds every acked line exactly once, with no gap in the seqs.
  const history = await (await fetch(`${west.base}/api/v1/rooms/${id}/events?after=0&limit=1000`)).json();
  const seqs = history.events.map((e) => e.seq);
  assert.deepEqual(seqs, seqs.map((_, i) => i + 1), 'the history has no gap and no repeat');
  for (const c of acked) {
    const copies = history.events.filter((e) => e.kind === 'chat' && e.data.text === c.text);
    assert.deepEqual(copies.map((e) => e.seq), [c.seq], `"${c.text}" is in the history once, at its acked seq`);
  }

  h.record('regions_failover', {
    chose,
    rtt_ms: Object.fromEntries(servers.map((s) => [`${s.region} ${s.base}`, s.rtt === null ? null : Math.round(s.rtt)])),
    failed_over_to: far.base,
    failover_ms: failedOverMs,
    follow_after_ms: Math.round(t1 - t0),
    settled_after_ms: settled,
    gap_after_ms: Math.round(gapAfter * 1000),
  });
  assert.ok(Math.abs(gapAfter) <= AGREE_S, `after the failover the pages are ${Math.round(gapAfter * 1000)} ms apart`);
  await alice.context().close();
  await bob.context().close();
});
