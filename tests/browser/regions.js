// Distance on one machine, for the browser tests: scripts/delay_proxy.py (a TCP proxy that
// holds every byte a while, optionally with jitter) and two regions, each a throwaway
// nats-server, joined by gateways through such proxies, as the cluster tests' regions are
// (synctv-api/tests/cluster/nats.rs): 40 ms each way, an 80 ms round trip between them.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as h from './harness.js';

/** One way, between the regions' gateways. */
export const REGION_LINK_DELAY_MS = 40;

function logFile(name) {
  fs.mkdirSync(path.join(h.artifacts, 'logs'), { recursive: true });
  return fs.openSync(path.join(h.artifacts, 'logs', `${name}.log`), 'a');
}

/** A child process that `kill()` ends with SIGKILL (and waits for). */
function owned(proc) {
  let exited = null;
  proc.on('exit', (code, sig) => {
    exited = code ?? sig;
  });
  return {
    proc,
    kill() {
      if (exited !== null) return Promise.resolve(exited);
      proc.kill('SIGKILL');
      return new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig)));
    },
  };
}

/**
 * A delaying TCP proxy on a free loopback port in front of `targetPort`: `delayMs` each way,
 * plus or minus up to `jitterMs`. `base` is its HTTP address.
 */
export async function startDelayProxy(targetPort, delayMs, { jitterMs = 0, name = 'delay-proxy' } = {}) {
  const port = await h.freePort();
  const args = [path.join(h.repoRoot, 'scripts', 'delay_proxy.py'), String(port), String(targetPort), String(delayMs)];
  if (jitterMs) args.push(String(jitterMs));
  const log = logFile(`${name}-${port}`);
  const proxy = owned(spawn('python3', args, { stdio: ['ignore', log, log] }));
  fs.closeSync(log);
  await h.waitUntil(`the delay proxy on port ${port}`, () => h.accepts(port), 10000);
  return { ...proxy, port, base: `http://127.0.0.1:${port}` };
}

export function natsServerBin() {
  const dirs = [...(process.env.PATH || '').split(':'), '/usr/sbin', '/usr/bin'];
  const found = dirs.map((d) => path.join(d, 'nats-server')).find((p) => fs.existsSync(p));
  if (!found) throw new Error('nats-server is not installed (scripts/test-browser installs it)');
  return found;
}

/** The server sends its INFO line as soon as a client connects. */
function greets(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 1000);
    s.once('data', (d) => {
      clearTimeout(timer);
      s.destroy();
      resolve(d.toString().startsWith('INFO'));
    });
    s.on('error', () => {
      clearTimeout(timer);
      resolve(false);
    });
  });
}

/** One nats-server for `region` in `dir`, with a gateway to the other region when given. */
async function startNats(dir, region, gateway) {
  const port = await h.freePort();
  const httpPort = await h.freePort();
  let config = `server_name: "${region}"\nlisten: "127.0.0.1:${port}"\nhttp: "127.0.0.1:${httpPort}"\n`;
  if (gateway) {
    config +=
      `gateway {\n  name: "${region}"\n  listen: "127.0.0.1:${gateway.listen}"\n` +
      `  advertise: "127.0.0.1:${gateway.advertise}"\n  connect_retries: 1000\n` +
      `  gateways: [{name: "${gateway.peer}", url: "nats://127.0.0.1:${gateway.peerPort}"}]\n}\n`;
  }
  const file = path.join(dir, `nats-${region}.conf`);
  fs.writeFileSync(file, config);
  const log = logFile(`nats-${region}-${port}`);
  const server = owned(spawn(natsServerBin(), ['-c', file], { cwd: dir, stdio: ['ignore', log, log] }));
  fs.closeSync(log);
  await h.waitUntil(`nats-server ${region} on port ${port}`, () => greets(port), 20000);
  return { ...server, region, port, httpPort, url: `nats://127.0.0.1:${port}` };
}

/** Whether `server` has its gateway link with `peer` both ways (its /gatewayz says so). */
async function gatewayUp(server, peer) {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}/gatewayz`);
  const body = await res.json();
  return Boolean(body.outbound_gateways?.[peer] && body.inbound_gateways?.[peer]);
}

/**
 * Two regions, `east` and `west`, each one nats-server, joined by gateways over a link of
 * `REGION_LINK_DELAY_MS` each way. Resolves once the gateways are linked both ways.
 */
export async function startTwoRegions(dir) {
  const eastGw = await h.freePort();
  const westGw = await h.freePort();
  const toWest = await startDelayProxy(westGw, REGION_LINK_DELAY_MS, { name: 'link-to-west' });
  const toEast = await startDelayProxy(eastGw, REGION_LINK_DELAY_MS, { name: 'link-to-east' });
  const east = await startNats(dir, 'east', { listen: eastGw, advertise: toEast.port, peer: 'west', peerPort: toWest.port });
  const west = await startNats(dir, 'west', { listen: westGw, advertise: toWest.port, peer: 'east', peerPort: toEast.port });
  await h.waitUntil('the gateways link east and west', async () => (await gatewayUp(east, 'west')) && (await gatewayUp(west, 'east')), 30000);
  return {
    east,
    west,
    async stop() {
      await Promise.all([east, west, toWest, toEast].map((p) => p.kill()));
    },
  };
}
