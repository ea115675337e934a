// Test harness for the browser tests: real synctv processes on free loopback ports, a
// local video server with Range support, Debian's chromium through playwright-core, and
// page helpers that read like what a person does on the page.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../..');
export const artifacts = path.join(repoRoot, 'artifacts', 'browser');

export const synctvBin =
  process.env.SYNCTV_BIN ||
  path.resolve(repoRoot, process.env.CARGO_TARGET_DIR || 'target', 'debug', 'synctv');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `probe` (an async function) until it returns something truthy, and returns that;
 * fails after `timeoutMs` naming `what`. For conditions outside a page (a server up, a
 * gateway linked); in a page, use playwright's waitForFunction.
 */
export async function waitUntil(what, probe, timeoutMs = 15000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => null);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(everyMs); // pacing of the poll: the loop ends when the condition holds
  }
}

/** Whether something accepts TCP connections on a loopback port. */
export function accepts(port) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => {
      s.end();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

export async function tempDir(prefix) {
  return fsp.mkdtemp(path.join(os.tmpdir(), `synctv-browser-${prefix}-`));
}

/**
 * One synctv process on a free loopback port with its own SQLite file (unless `dbUrl` is
 * given, to restart a node on the same data). Its output goes to artifacts/browser/logs/.
 */
export async function startSynctv({ name = 'node', dir, port, dbUrl, env = {}, readyTimeoutMs = 30000 } = {}) {
  if (!fs.existsSync(synctvBin)) throw new Error(`no synctv binary at ${synctvBin}: run cargo build -p synctv-api`);
  dir = dir || (await tempDir(name));
  port = port || (await freePort());
  dbUrl = dbUrl || `sqlite://${path.join(dir, `${name}.db`)}?mode=rwc`;
  fs.mkdirSync(path.join(artifacts, 'logs'), { recursive: true });
  const logPath = path.join(artifacts, 'logs', `${name}-${port}.log`);
  const log = fs.openSync(logPath, 'a');
  const proc = spawn(synctvBin, [], {
    cwd: dir,
    env: {
      ...process.env,
      SYNCTV__SERVER__HOST: '127.0.0.1',
      SYNCTV__SERVER__PORT: String(port),
      SYNCTV__DATABASE__URL: dbUrl,
      SYNCTV__SERVER__DRAIN_SECS: '2',
      // Every test signs in from 127.0.0.1.
      SYNCTV__LIMITS__GUESTS_PER_MINUTE: '100000',
      SYNCTV__LIMITS__ROOMS_PER_MINUTE: '100000',
      RUST_LOG: process.env.RUST_LOG || 'info',
      ...env,
    },
    stdio: ['ignore', log, log],
  });
  fs.closeSync(log);
  const node = {
    name,
    dir,
    port,
    dbUrl,
    logPath,
    proc,
    base: `http://127.0.0.1:${port}`,
    exited: null,
    kill(signal = 'SIGKILL') {
      if (node.exited === null) proc.kill(signal);
      return node.waitExit();
    },
    waitExit() {
      return node.exited !== null ? Promise.resolve(node.exited) : new Promise((r) => proc.once('exit', (code, sig) => r(code ?? sig)));
    },
    logTail(n = 20) {
      try {
        return fs.readFileSync(logPath, 'utf8').trim().split('\n').slice(-n).join('\n');
      } catch (_) {
        return '';
      }
    },
  };
  proc.on('exit', (code, sig) => {
    node.exited = code ?? sig;
  });
  const deadline = Date.now() + readyTimeoutMs;
  while (Date.now() < deadline) {
    if (node.exited !== null) throw new Error(`synctv ${name} exited (${node.exited}) before it was healthy:\n${node.logTail()}`);
    try {
      const res = await fetch(`${node.base}/health`);
      if (res.ok) return node;
    } catch (_) {
      /* not listening yet */
    }
    await sleep(100); // pacing of the poll: the loop ends when /health answers
  }
  await node.kill();
  throw new Error(`synctv ${name} was not healthy within ${readyTimeoutMs} ms:\n${node.logTail()}`);
}

/**
 * The test video: $SYNCTV_TEST_VIDEO (made by scripts/test-browser), else made here with
 * ffmpeg. H.264 in MP4 with a key frame every 0.2 s (fast, exact seeks): Debian's chromium plays it (VP8 in
 * WebM works too, but takes ffmpeg several times longer to encode on two cores).
 */
export async function testVideo() {
  if (process.env.SYNCTV_TEST_VIDEO && fs.existsSync(process.env.SYNCTV_TEST_VIDEO)) return process.env.SYNCTV_TEST_VIDEO;
  const dir = await tempDir('video');
  const out = path.join(dir, 'testsrc.mp4');
  makeVideo(out);
  return out;
}

export function makeVideo(out, seconds = 120) {
  execFileSync(
    'ffmpeg',
    ['-loglevel', 'error', '-y', '-f', 'lavfi', '-i', `testsrc=duration=${seconds}:size=640x360:rate=25`,
      '-c:v', 'libx264', '-preset', 'ultrafast', '-g', '5', '-pix_fmt', 'yuv420p', '-movflags', '+faststart', '-an', out],
    { stdio: 'inherit' },
  );
}

/** Serves one file on loopback with Range support, so the player can seek. */
export async function serveVideo(file) {
  const size = fs.statSync(file).size;
  const type = file.endsWith('.mp4') ? 'video/mp4' : 'video/webm';
  const server = http.createServer((req, res) => {
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
    if (!range) {
      res.writeHead(200, { 'content-type': type, 'content-length': size, 'accept-ranges': 'bytes' });
      if (req.method === 'HEAD') return res.end();
      fs.createReadStream(file).pipe(res);
      return;
    }
    let start = range[1] === '' ? size - Number(range[2]) : Number(range[1]);
    let end = range[1] !== '' && range[2] !== '' ? Number(range[2]) : size - 1;
    end = Math.min(end, size - 1);
    if (!(start >= 0) || start > end) {
      res.writeHead(416, { 'content-range': `bytes */${size}` });
      return res.end();
    }
    res.writeHead(206, {
      'content-type': type,
      'content-length': end - start + 1,
      'content-range': `bytes ${start}-${end}/${size}`,
      'accept-ranges': 'bytes',
    });
    if (req.method === 'HEAD') return res.end();
    fs.createReadStream(file, { start, end }).pipe(res);
  });
  const port = await freePort();
  await new Promise((r) => server.listen(port, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${port}/${path.basename(file)}`, close: () => new Promise((r) => server.close(r)) };
}

export async function launchBrowser() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
      // Several pages play at once in one headless browser: none of them is "hidden".
      '--disable-background-timer-throttling',
      '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

export async function screenshot(page, name) {
  fs.mkdirSync(artifacts, { recursive: true });
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({ path: file });
  return file;
}

/**
 * A fresh browser profile with one page, not yet on synctv. `config` replaces /config.json
 * (the server list) when given; `init` runs in the page before its scripts.
 */
export async function newPage(browser, base, { config, init } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  if (init) await context.addInitScript(init);
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  if (process.env.SYNCTV_BROWSER_WEB_DIR) {
    // Page development: the working tree's scripts and style instead of the copies built
    // into the binary (not the document: a document fulfilled here loses its loopback
    // address space, and chromium's local network access checks then block the WebSocket).
    const dir = path.resolve(repoRoot, process.env.SYNCTV_BROWSER_WEB_DIR);
    const served = (p) => p === '/app.js' || p === '/style.css' || /^\/js\/[\w-]+\.js$/.test(p);
    await page.route(
      (url) => url.origin === new URL(base).origin && served(url.pathname),
      (route) => {
        const file = new URL(route.request().url()).pathname;
        const contentType = file.endsWith('.css') ? 'text/css' : 'text/javascript';
        route.fulfill({ status: 200, contentType, body: fs.readFileSync(path.join(dir, file)) });
      },
    );
  }
  if (config) {
    await page.route('**/config.json', (route) =>
      route.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify(config) }),
    );
  }
  return page;
}

/** A person on the page: a fresh browser profile, signed in as a guest. */
export async function openPerson(browser, base, name, { config, hash = '' } = {}) {
  const page = await newPage(browser, base, { config });
  await page.goto(`${base}/${hash}`);
  await page.fill('#login-name', name);
  await page.click('#login-form button[type=submit]');
  await page.waitForFunction(() => window.synctv && window.synctv.user() !== null);
  page.person = name;
  return page;
}

/** Creates a room through the lobby form; returns its id once joined. */
export async function createRoom(page, name, { password, control } = {}) {
  await page.waitForSelector('#view-lobby:not([hidden])');
  await page.fill('#create-name', name);
  if (password) await page.fill('#create-password', password);
  if (control) await page.check(`input[name=control][value=${control}]`);
  await page.click('#create-form button[type=submit]');
  await waitJoined(page);
  return page.evaluate(() => window.synctv.room());
}

export async function openRoomLink(page, base, id) {
  await page.goto(`${base}/#room=${id}`);
  await waitJoined(page);
}

export async function waitJoined(page, timeout = 15000) {
  await page.waitForFunction(() => window.synctv && window.synctv.joined(), null, { timeout });
}

export async function setMedia(page, url) {
  await page.fill('#media-url', url);
  await page.click('#media-form button[type=submit]');
}

/** Waits until the player has the room's media loaded and aligned. */
export async function waitMediaReady(page, url, timeout = 15000) {
  await page.waitForFunction(
    (u) => {
      const v = document.getElementById('player');
      const s = window.synctv.state();
      return s && s.media && s.media.url === u && v.readyState >= 2 && !v.seeking;
    },
    url,
    { timeout },
  );
}

export async function sendChat(page, text) {
  await page.fill('#chat-input', text);
  await page.click('#chat-form button[type=submit]');
}

export const sample = (page) => page.evaluate(() => window.synctv.sample());

/**
 * How far apart two players are, in seconds: b's position carried to the instant a was read
 * (same machine, same wall clock), so the two reads need not be simultaneous.
 */
export async function gap(a, b) {
  const [sa, sb] = await Promise.all([sample(a), sample(b)]);
  const bAtA = sb.paused ? sb.position : sb.position + ((sa.at - sb.at) / 1000) * sb.rate;
  return sa.position - bAtA;
}

/** The worst gap over a few reads spread over `ms`. */
export async function worstGap(a, b, ms = 1000, reads = 5) {
  let worst = 0;
  for (let i = 0; i < reads; i++) {
    const g = await gap(a, b);
    if (Math.abs(g) > Math.abs(worst)) worst = g;
    await sleep(ms / reads); // spreads the reads over `ms`: sampling, not synchronisation
  }
  return worst;
}

/**
 * Waits until two players agree within `tolerance` seconds on `reads` reads in a row (they
 * have settled after a change), and returns how long that took in ms. Fails after
 * `timeoutMs` with the last gap seen.
 */
export async function untilAgree(a, b, tolerance, timeoutMs = 15000, reads = 3) {
  const started = Date.now();
  let inRow = 0;
  let last = null;
  while (inRow < reads) {
    last = await gap(a, b);
    inRow = Math.abs(last) <= tolerance ? inRow + 1 : 0;
    if (inRow < reads) {
      if (Date.now() - started > timeoutMs) {
        throw new Error(`the players did not agree within ${tolerance * 1000} ms in ${timeoutMs} ms (last gap ${Math.round(last * 1000)} ms)`);
      }
      await sleep(100); // pacing of the poll: the loop ends on agreement
    }
  }
  return Date.now() - started;
}

/**
 * Wall-clock ms (on this machine) at which `predicate` first held in the page.
 *
 * The predicate's source is spliced into the function handed to playwright, which compiles
 * it once when it injects it: the page's Content-Security-Policy has no 'unsafe-eval', so
 * nothing may compile a string while the page runs (`new Function` there is refused).
 */
export async function whenTrue(page, predicate, arg, timeout = 5000) {
  // eslint-disable-next-line no-new-func
  const probe = new Function(
    'a',
    `const ok = (${predicate.toString()})(document.getElementById('player'), window.synctv, a);
     return ok ? performance.timeOrigin + performance.now() : false;`,
  );
  const handle = await page.waitForFunction(probe, arg, { polling: 10, timeout });
  return handle.jsonValue();
}

/** Runs `fn` in the page and returns the wall-clock ms just before it ran. */
export async function act(page, fn, arg) {
  // eslint-disable-next-line no-new-func
  const run = new Function(
    'a',
    `const at = performance.timeOrigin + performance.now();
     (${fn.toString()})(document.getElementById('player'), a);
     return at;`,
  );
  return page.evaluate(run, arg);
}

/** Records a named measurement for the final report (artifacts/browser/results.json). */
const results = {};
export function record(key, value) {
  results[key] = value;
  fs.mkdirSync(artifacts, { recursive: true });
  const file = path.join(artifacts, 'results.json');
  let all = {};
  try {
    all = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (_) {
    all = {};
  }
  all[key] = value;
  fs.writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
  console.log(`# ${key}: ${JSON.stringify(value)}`);
}
