// Three synctv nodes in cluster mode (one Redis, one database); two pages given all three
// addresses through /config.json. Killing the node one page uses makes that page fail over
// to another node, recover, and stay in sync with the other page.
//
// Needs redis-server and a synctv that runs in cluster mode. Runs when both are there;
// otherwise it is skipped with the reason. SYNCTV_BROWSER_CLUSTER=1 turns a cluster that
// cannot start into a failure, SYNCTV_BROWSER_CLUSTER=0 skips the test.
// The nodes share $SYNCTV_BROWSER_DATABASE_URL (e.g. a Postgres URL) when it is set, else
// one SQLite file.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import * as h from './harness.js';

const mode = process.env.SYNCTV_BROWSER_CLUSTER ?? 'auto';
const AGREE_S = 0.15;

let skip = null;
let redis;
let nodes = [];
let media;
let browser;

function hasRedis() {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch (_) {
    return false;
  }
}

async function startRedis(dir) {
  const port = await h.freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  try {
    await h.waitUntil('redis-server accepts connections', () => h.accepts(port), 10000);
  } catch (e) {
    proc.kill('SIGKILL');
    throw e;
  }
  return { port, proc, url: `redis://127.0.0.1:${port}` };
}

before(async () => {
  if (mode === '0') {
    skip = 'SYNCTV_BROWSER_CLUSTER=0';
    return;
  }
  if (!hasRedis()) {
    skip = 'redis-server is not installed (SYNCTV_BROWSER_CLUSTER=1 scripts/test-browser installs it)';
    if (mode === '1') throw new Error(skip);
    return;
  }
  try {
    const dir = await h.tempDir('cluster');
    redis = await startRedis(dir);
    const dbUrl = process.env.SYNCTV_BROWSER_DATABASE_URL || `sqlite://${path.join(dir, 'cluster.db')}?mode=rwc`;
    const env = {
      SYNCTV__REDIS__URL: redis.url,
      SYNCTV__AUTH__JWT_SECRET: 'browser-test-shared-secret-0123456789abcdef',
    };
    // Each node knows the others' addresses: the page of one may connect to another (the
    // Origin rule, and the page's Content-Security-Policy, allow the public URLs).
    const ports = [await h.freePort(), await h.freePort(), await h.freePort()];
    env.SYNCTV__SERVER__PUBLIC_URLS = JSON.stringify(ports.map((p) => `http://127.0.0.1:${p}`));
    for (const i of [1, 2, 3]) {
      nodes.push(
        await h.startSynctv({ name: `node${i}`, dir, dbUrl, port: ports[i - 1], env: { ...env, SYNCTV__CLUSTER__NODE_ID: `node${i}` } }),
      );
    }
    for (const n of nodes) {
      const ready = await (await fetch(`${n.base}/ready`)).json();
      if (ready.cluster_mode !== true) throw new Error(`${n.name} is not in cluster mode: ${JSON.stringify(ready)}`);
    }
  } catch (e) {
    skip = `the synctv nodes could not start in cluster mode: ${String(e.message).split('\n')[0]}`;
    if (mode === '1') throw e;
    return;
  }
  media = await h.serveVideo(await h.testVideo());
  browser = await h.launchBrowser();
});

after(async () => {
  await browser?.close();
  for (const n of nodes) await n.kill('SIGKILL');
  redis?.proc.kill('SIGKILL');
  await media?.close();
});

test('with three nodes, a page whose node dies fails over and stays in sync', { timeout: 120000 }, async (t) => {
  if (skip) {
    t.skip(`cluster failover not tested: ${skip}`);
    return;
  }
  const config = { servers: nodes.map((n) => n.base) };
  const alice = await h.openPerson(browser, nodes[0].base, 'alice', { config });
  const id = await h.createRoom(alice, 'cluster night');
  const bob = await h.openPerson(browser, nodes[1].base, 'bob', { config, hash: `#room=${id}` });
  await h.waitJoined(bob);
  // Each page measured every node and connected to one of them.
  for (const p of [alice, bob]) {
    const servers = await p.evaluate(() => window.synctv.servers());
    assert.equal(servers.length, 3);
  }
  await h.setMedia(alice, media.url);
  await Promise.all([h.waitMediaReady(alice, media.url), h.waitMediaReady(bob, media.url)]);
  await h.act(alice, () => document.getElementById('btn-play').click());
  await h.whenTrue(bob, (v) => !v.paused, {}, 5000);
  const settledBefore = await h.untilAgree(alice, bob, AGREE_S);
  const beforeGap = await h.worstGap(alice, bob);

  const used = await alice.evaluate(() => window.synctv.server());
  const victim = nodes.find((n) => n.base === used);
  assert.ok(victim, `alice uses ${used}`);
  await victim.kill('SIGKILL');
  await alice.waitForFunction(
    (dead) => window.synctv.status() === 'connected' && window.synctv.server() !== dead && window.synctv.joined(),
    used,
    { timeout: 30000 },
  );
  const now = await alice.evaluate(() => window.synctv.server());
  await h.screenshot(alice, 'cluster-failover');

  const settledAfter = await h.untilAgree(alice, bob, AGREE_S, 30000);
  const afterGap = await h.worstGap(alice, bob);
  // And control still flows both ways across nodes.
  const t0 = await h.act(bob, (v) => v.pause());
  const t1 = await h.whenTrue(alice, (v) => v.paused, {}, 5000);
  h.record('cluster_failover', {
    from: used,
    to: now,
    settled_before_ms: settledBefore,
    gap_before_ms: Math.round(beforeGap * 1000),
    settled_after_ms: settledAfter,
    gap_after_ms: Math.round(afterGap * 1000),
    follow_after_ms: Math.round(t1 - t0),
  });
  assert.ok(Math.abs(beforeGap) <= AGREE_S, `before: ${Math.round(beforeGap * 1000)} ms apart`);
  assert.ok(Math.abs(afterGap) <= AGREE_S, `after the failover: ${Math.round(afterGap * 1000)} ms apart`);
  assert.ok(t1 - t0 <= 500, `followed a pause after ${Math.round(t1 - t0)} ms`);
});
