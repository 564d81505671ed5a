// The live view of a three-agent cluster in headless Chromium: the members and their names, a text
// and a binary key, the filter, and an agent killed turning dead on the page; a screenshot at the end.
//
//   TIDINGS_BIN=target/release/tidings CHROMIUM=/usr/bin/chromium SCREENSHOT=ui.png node test.mjs
import { chromium } from "playwright-core";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import net from "node:net";
import dgram from "node:dgram";

const bin = process.env.TIDINGS_BIN;
const shot = process.env.SCREENSHOT || "ui.png";
if (!bin) throw new Error("TIDINGS_BIN names the tidings binary");

const freeTcp = () => new Promise((ok) => {
  const s = net.createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); });
});
const freeUdp = () => new Promise((ok) => {
  const s = dgram.createSocket("udp4").bind(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => ok(p)); });
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const dir = mkdtempSync(join(tmpdir(), "tidings-ui-"));
const agents = [];
async function start(i, seed) {
  const gossip = await freeUdp(), api = await freeTcp();
  const args = ["agent", "--preset", "local", "--name", `ui-${i}`, "--bind", `127.0.0.1:${gossip}`,
                "--http", `127.0.0.1:${api}`, "--data-dir", join(dir, `ui-${i}`)];
  if (seed) args.push("--seed", `127.0.0.1:${seed}`);
  const child = spawn(bin, args, { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, RUST_LOG: "warn" } });
  agents.push(child);
  for (let t = 0; t < 200; t++) {
    try { if ((await fetch(`http://127.0.0.1:${api}/v1/health`)).ok) return { gossip, api, child }; } catch (_) {}
    await sleep(50);
  }
  throw new Error(`agent ui-${i} did not start`);
}
function check(cond, what) { if (!cond) throw new Error("FAILED: " + what); console.log("ok: " + what); }

let browser;
try {
  const a1 = await start(1);
  await start(2, a1.gossip);
  const a3 = await start(3, a1.gossip);
  const base = `http://127.0.0.1:${a1.api}`;
  await fetch(`${base}/v1/kv/greeting`, { method: "PUT", body: "hello from the browser test" });
  await fetch(`${base}/v1/kv/blob`, { method: "PUT", body: new Uint8Array([0xff, 0x00, 0x10]) });

  browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  await page.goto(`${base}/ui`);
  for (const name of ["ui-1", "ui-2", "ui-3"]) {
    await page.waitForSelector(`#members tr[data-name="${name}"] .status.alive`, { timeout: 20000 });
  }
  check(true, "the three members appear alive, by name");
  const members = await (await fetch(`${base}/v1/members`)).text();
  const id1 = members.match(/"id":(\d+),"name":"ui-1"/)[1];
  const shown = await page.textContent('#members tr[data-name="ui-1"] td:nth-child(2)');
  check(shown === id1, `a 64-bit node id is shown exactly (${id1})`);
  await page.waitForSelector('#keys tr[data-key="greeting"]', { timeout: 10000 });
  const value = await page.textContent('#keys tr[data-key="greeting"] td.value');
  check(value.includes("hello from the browser test"), "the written key and its value appear");
  const hex = await page.textContent('#keys tr[data-key="blob"] td.value');
  check(hex.startsWith("ff0010"), "a binary value is shown as hex");
  await page.fill("#filter", "greet");
  check((await page.$$("#keys tbody tr[data-key]")).length === 1, "the filter keeps the matching key");
  await page.fill("#filter", "");

  // A write made after the page loaded shows within a second.
  const written = Date.now();
  await fetch(`${base}/v1/kv/late`, { method: "PUT", body: "arrives live" });
  await page.waitForSelector('#keys tr[data-key="late"]', { timeout: 5000 });
  const lag = Date.now() - written;
  check(lag < 1000, `a new key shows within a second (${lag} ms)`);

  a3.child.kill("SIGKILL");
  await page.waitForSelector('#members tr[data-name="ui-3"] .status.dead', { timeout: 30000 });
  check(true, "the killed agent turns dead on the page");
  const feed = await page.textContent("#feed");
  check(/ui-3 (suspected|failed)/.test(feed), "the event feed shows it");
  await sleep(2500); // a few chart samples
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`ui test passed; screenshot: ${shot}`);
} finally {
  if (browser) await browser.close();
  for (const a of agents) a.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
}
