// The log explorer in a real browser: Debian's headless Chromium, driven by playwright-core,
// against a `cairn-node dev` cluster whose logs two `cairn witness serve` witnesses cosign.
//
// Goal: a person can search every way the page offers, open an entry and a log, and sees
// "verified" only when the checks made in the browser pass. Method: entries are made with
// `cairn sign` (keyless, the dev issuer); the browser reaches the node through a proxy on
// loopback that passes everything through, or tampers with one kind of answer (an inclusion
// proof, a checkpoint, a consistency proof, a cosignature); the page must then say "failed".
// Every request the page makes must go to the proxy's origin, and the page must log no
// Content-Security-Policy violation.
//
// Needs the debug binaries (`cargo build -p node -p client`, or `cargo test` before), Chromium
// at /usr/bin/chromium (Debian's `chromium`; CHROMIUM to override), and `npm ci` here.
// scripts/explorer-test does all three. With CAIRN_EXPLORER_SCREENSHOTS=DIR, a screenshot of
// each page is written to DIR (scripts/explorer-test --screenshots writes docs/explorer/).
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createHash, generateKeyPairSync } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const target = process.env.CARGO_TARGET_DIR ? path.resolve(process.env.CARGO_TARGET_DIR) : path.join(repo, "target");
const NODE_BIN = path.join(target, "debug", "cairn-node");
const CAIRN_BIN = path.join(target, "debug", "cairn");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const SCREENSHOTS = process.env.CAIRN_EXPLORER_SCREENSHOTS;
const IDENTITY = "alice@example.com";

const work = fs.mkdtempSync(path.join(os.tmpdir(), "cairn-explorer-"));
const children = [];
let dev;
let base;
let proxy;
let proxyUrl;
let browser;
let page;
let tamper = "none";
/** The origin the page under test was loaded from: it may ask no other. */
let origin;
const problems = [];

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function portFree(port) {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

/** A base port whose node, cluster and issuer ports are free (below the ephemeral range). */
async function freeBasePort() {
  for (let candidate = 21000 + (process.pid % 50) * 97; candidate < 32000; candidate += 37) {
    let free = true;
    for (const offset of [0, 1, 2, 100, 101, 102, 300]) {
      if (!(await portFree(candidate + offset))) {
        free = false;
        break;
      }
    }
    if (free) return candidate;
  }
  throw new Error("no free port range");
}

async function freePort() {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function run(bin, args, env = {}) {
  const result = spawnSync(bin, args, { env: { ...process.env, ...env }, encoding: "utf8", timeout: 120000 });
  assert.equal(result.status, 0, `${path.basename(bin)} ${args.join(" ")}\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

function cairn(args, home = "home") {
  return run(CAIRN_BIN, args, { CAIRN_HOME: path.join(work, home), SIGSTORE_ID_TOKEN: "", CAIRN_URL: "", CAIRN_TRUST_ROOT: "" });
}

function start(bin, args, log) {
  const out = fs.openSync(path.join(work, log), "a");
  const child = spawn(bin, args, { stdio: ["ignore", out, out] });
  children.push(child);
  return child;
}

async function waitFor(what, check, ms = 90000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch {
      // Not yet.
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; see ${work}`);
    await sleep(100);
  }
}

async function get(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response;
}

/** The dev cluster: nodes on BASE.., the issuer on BASE+300. */
async function startDev(extra = []) {
  const dir = path.join(work, "cluster");
  fs.rmSync(path.join(dir, "cluster.json"), { force: true });
  const child = start(NODE_BIN, ["dev", "--nodes", "3", "--base-port", String(base), "--dir", dir, ...extra], "dev.log");
  await waitFor("the dev cluster", () => JSON.parse(fs.readFileSync(path.join(dir, "cluster.json"), "utf8")));
  return child;
}

async function stopDev() {
  dev.kill("SIGTERM");
  await new Promise((resolve) => (dev.exitCode !== null ? resolve() : dev.once("exit", resolve)));
}

// ---- The tampering proxy ----

function flipBase64(text) {
  const bytes = Buffer.from(text, "base64");
  bytes[bytes.length - 1] ^= 1;
  return bytes.toString("base64");
}

/** What the proxy does to a response body, by the current `tamper` mode. */
function tampered(pathname, body) {
  const text = body.toString("utf8");
  if (tamper === "inclusion" && pathname.endsWith("/proof/inclusion")) {
    const proof = JSON.parse(text);
    // A tree of one entry has an empty proof: one hash too many fails as well.
    if (proof.hashes.length === 0) proof.hashes.push(Buffer.alloc(32).toString("base64"));
    else proof.hashes[0] = flipBase64(proof.hashes[0]);
    return Buffer.from(JSON.stringify(proof));
  }
  if (tamper === "consistency" && pathname.endsWith("/proof/consistency")) {
    const proof = JSON.parse(text);
    proof.hashes[proof.hashes.length - 1] = flipBase64(proof.hashes[proof.hashes.length - 1]);
    return Buffer.from(JSON.stringify(proof));
  }
  if (tamper === "entry" && pathname.includes("/entries/")) {
    // The artifact's digest, one hex digit changed: still a well-formed entry.
    return Buffer.from(text.replace(/"digest":"[A-Za-z0-9+/]/, (m) => m.slice(0, -1) + (m.endsWith("A") ? "B" : "A")));
  }
  if (tamper === "key" && pathname === "/logs") {
    const listed = JSON.parse(text);
    for (const log of listed.logs) if (log.name === "certificates") log.verifier_key = otherKey;
    return Buffer.from(JSON.stringify(listed));
  }
  if (tamper === "root" && pathname === "/trust/trusted_root.json") {
    // The certificate log left out of the trusted root.
    const root = JSON.parse(text);
    root.tlogs = root.tlogs.filter((tlog) => !tlog.baseUrl.includes("//certificates."));
    return Buffer.from(JSON.stringify(root));
  }
  if (tamper === "unwitnessed" && pathname.endsWith("/witnesses")) {
    return Buffer.from(JSON.stringify({ ...JSON.parse(text), witnessed: false, policy: null, witnesses: [] }));
  }
  if (tamper === "checkpoint" && pathname.endsWith("/checkpoint")) {
    const lines = text.split("\n");
    lines[2] = flipBase64(lines[2]);
    return Buffer.from(lines.join("\n"));
  }
  if (tamper === "cosignature" && pathname.endsWith("/checkpoint")) {
    // Every witness's cosignature line, its Ed25519 signature's last byte changed.
    return Buffer.from(
      text
        .split("\n")
        .map((line, i, all) => (i > all.indexOf("") && line.startsWith("\u2014 witness") ? line.replace(/\S+$/, flipBase64) : line))
        .join("\n"),
    );
  }
  return body;
}

/** A valid verifier key named like the certificate log, for another Ed25519 key. */
let otherKey;
async function makeOtherKey(name) {
  const { publicKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  const id = createHash("sha256").update(Buffer.concat([Buffer.from(`${name}\n`), Buffer.from([1]), raw])).digest().subarray(0, 4);
  return `${name}+${id.toString("hex")}+${Buffer.concat([Buffer.from([1]), raw]).toString("base64")}`;
}

function startProxy(upstream) {
  return http.createServer((request, response) => {
    const forward = http.request(`${upstream}${request.url}`, { method: request.method, headers: { ...request.headers, host: new URL(upstream).host } }, (answer) => {
      const chunks = [];
      answer.on("data", (chunk) => chunks.push(chunk));
      answer.on("end", () => {
        const { pathname } = new URL(request.url, upstream);
        const body = answer.statusCode === 200 ? tampered(pathname, Buffer.concat(chunks)) : Buffer.concat(chunks);
        const headers = { ...answer.headers, "content-length": String(body.length) };
        response.writeHead(answer.statusCode, headers);
        response.end(body);
      });
    });
    forward.on("error", (error) => {
      response.writeHead(502);
      response.end(String(error));
    });
    request.pipe(forward);
  });
}

/** Waits until the proxied node publishes a checkpoint of `log` with `size` entries: each
 * node publishes what it has applied, once the witnesses cosigned it. */
async function waitForSize(log, size) {
  await waitFor(`${log} at size ${size}`, async () => {
    const note = await (await get(`http://127.0.0.1:${base + 1}/logs/${log}/checkpoint`)).text();
    return note.split("\n")[1] === String(size);
  });
}

/** Signs `name` with `cairn sign` through another node; waits until the log has `size`. */
async function signAndWait(name, size) {
  const file = path.join(work, name);
  fs.writeFileSync(file, `${name}\n`);
  cairn(["sign", "--url", `http://127.0.0.1:${base}`, file]);
  await waitForSize("artifacts", size);
}

// ---- The page ----

/** Opens `hash` and waits until the page says it is complete. */
async function open(hash) {
  // A fresh load every time: going to the address already shown would change nothing.
  await page.goto("about:blank");
  await page.goto(`${origin}/${hash}`);
  await page.waitForSelector(`body[data-ready="${hash}"]`, { timeout: 60000 });
}

async function statusOf(selector) {
  return page.getAttribute(selector, "data-status");
}

/** With CAIRN_EXPLORER_SCREENSHOTS: the page (the whole of it, or what a window shows). */
async function screenshot(name, fullPage = true) {
  if (!SCREENSHOTS) return;
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  await page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage });
}

before(async () => {
  for (const bin of [NODE_BIN, CAIRN_BIN, CHROMIUM]) assert.ok(fs.existsSync(bin), `${bin} is missing`);
  base = await freeBasePort();
  const issuer = `http://127.0.0.1:${base + 300}`;
  // Two witnesses (their keys first: the cluster's tlog-policy names them).
  const witnesses = [];
  for (const name of ["w1", "w2"]) {
    const dir = path.join(work, name);
    const vkey = run(CAIRN_BIN, ["witness", "init", "--dir", dir, "--name", `witness.test/${name}`]).trim().split("\n").pop();
    witnesses.push({ name, dir, vkey, port: await freePort() });
  }
  const policy = path.join(work, "witnesses.txt");
  fs.writeFileSync(
    policy,
    witnesses.map((w) => `witness ${w.name} ${w.vkey} http://127.0.0.1:${w.port}`).join("\n") + "\ngroup both all w1 w2\nquorum both\n",
  );
  dev = await startDev(["--witness-policy", policy]);
  // The cluster wrote its full policy (its logs' lines first); the witnesses serve those logs.
  const clusterPolicy = path.join(work, "cluster", "witness-policy.txt");
  for (const w of witnesses) {
    start(CAIRN_BIN, ["witness", "serve", "--dir", w.dir, "--policy", clusterPolicy, "--listen", `127.0.0.1:${w.port}`], `${w.name}.log`);
  }
  // A witnessed log publishes its first checkpoint with its first entries: `cairn sign` waits.
  const nodeUrl = `http://127.0.0.1:${base + 1}`;

  // Entries: five artifacts signed by alice in one `cairn sign` (one certificate), one more.
  cairn(["login", "--dev", IDENTITY, "--dev-issuer", issuer]);
  const files = [];
  for (let i = 1; i <= 5; i++) {
    const file = path.join(work, `artifact-${i}.txt`);
    fs.writeFileSync(file, `artifact ${i} for the explorer\n`);
    files.push(file);
  }
  cairn(["sign", "--url", nodeUrl, ...files]);
  cairn(["sign", "--url", nodeUrl, "--rekor-version", "1", files[0]]);
  await waitForSize("artifacts", 6);
  await waitForSize("certificates", 4);

  proxy = startProxy(nodeUrl);
  await new Promise((resolve) => proxy.listen(0, "127.0.0.1", resolve));
  proxyUrl = `http://127.0.0.1:${proxy.address().port}`;
  origin = proxyUrl;

  browser = await chromium.launchPersistentContext(path.join(work, "chromium-profile"), {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1200, height: 900 },
    // Without the background-networking flags Chromium calls home, which a closed network
    // refuses; the sandbox needs privileges a CI container lacks.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  page = browser.pages()[0] ?? (await browser.newPage());
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.origin !== origin && url.href !== "about:blank") problems.push(`request to another origin: ${url}`);
  });
});

after(async () => {
  await browser?.close();
  proxy?.close();
  if (dev) await stopDev().catch(() => {});
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  if (!process.exitCode) fs.rmSync(work, { recursive: true, force: true });
});

test("cairn-node dev prints the explorer's address", () => {
  const printed = fs.readFileSync(path.join(work, "dev.log"), "utf8");
  assert.match(printed, new RegExp(`log explorer .*: http://127\\.0\\.0\\.1:${base}/\n`));
});

test("the page is served with a strict Content-Security-Policy", async () => {
  const response = await get(`${proxyUrl}/`);
  const csp = response.headers.get("content-security-policy");
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'/);
  assert.match(csp, /frame-ancestors 'none'/);
  assert.doesNotMatch(csp, /unsafe/);
  assert.equal(response.headers.get("x-content-type-options"), "nosniff");
  assert.match(await response.text(), /<script type="module" src="\/explorer\/app.js"><\/script>/);
});

test("search by identity pages through the results; an entry verifies", async () => {
  await open("#/");
  await screenshot("search");
  // Two per page: three pages of alice's six artifact entries.
  await open(`#/search?log=artifacts&kind=identity&q=${encodeURIComponent(IDENTITY)}&limit=2`);
  assert.equal(await page.locator("#result-table a.result").count(), 2);
  const seen = [];
  for (let pageNumber = 1; ; pageNumber++) {
    seen.push(...(await page.locator("#result-table a.result").allTextContents()));
    if (pageNumber === 2) await screenshot("search-results");
    if ((await page.locator("#page-next").count()) === 0) break;
    const next = await page.getAttribute("#page-next", "href");
    await open(next);
  }
  assert.deepEqual(seen, ["0", "1", "2", "3", "4", "5"]);
  // Back one page.
  await open(await page.getAttribute("#page-previous", "href"));
  assert.deepEqual(await page.locator("#result-table a.result").allTextContents(), ["2", "3"]);

  await open("#/entry/artifacts/1");
  assert.equal(await statusOf("#entry-status"), "verified", await page.textContent("#checks"));
  assert.equal(await page.textContent("#signer"), IDENTITY);
  const checks = await page.textContent("#checks");
  assert.match(checks, /included in the checkpoint/);
  assert.match(checks, /cosigned by the tlog-policy's witness quorum/);
  const certificate = await page.textContent("#certificate");
  assert.match(certificate, /email: alice@example\.com/);
  assert.match(certificate, new RegExp(`Fulcio Issuer \\(V2\\)http://127\\.0\\.0\\.1:${base + 300}`));
  await screenshot("entry");
});

test("search by a dropped file's digest, by UUID, by index and by public key", async () => {
  await open("#/search?log=artifacts");
  const file = path.join(work, "artifact-3.txt");
  await page.setInputFiles("#search-file", file);
  await page.waitForSelector("#result-table a.result, #no-results", { timeout: 30000 });
  assert.deepEqual(await page.locator("#result-table a.result").allTextContents(), ["2"]);
  // The same by dropping a file on the page.
  await open("#/search?log=artifacts");
  const dropped = await page.evaluateHandle((text) => {
    const transfer = new DataTransfer();
    transfer.items.add(new File([text], "artifact-4.txt"));
    return transfer;
  }, fs.readFileSync(path.join(work, "artifact-4.txt"), "utf8"));
  await page.dispatchEvent("#drop", "drop", { dataTransfer: dropped });
  await page.waitForSelector("#result-table a.result, #no-results", { timeout: 30000 });
  assert.deepEqual(await page.locator("#result-table a.result").allTextContents(), ["3"]);

  // The Rekor v1 entry (the sixth) carries a signed entry timestamp, checked in the browser.
  const uuid = JSON.parse(await (await get(`${proxyUrl}/logs/artifacts/proof/inclusion?index=5`)).text());
  assert.ok(uuid.hashes.length > 0);
  const leaf = await (await get(`${proxyUrl}/logs/artifacts/entries/5`)).arrayBuffer();
  const hash = Buffer.from(await crypto.subtle.digest("SHA-256", Buffer.concat([Buffer.from([0]), Buffer.from(leaf)]))).toString("hex");
  await open(`#/search?log=artifacts&kind=uuid&q=${hash}`);
  await page.waitForSelector('body[data-ready="#/entry/artifacts/5"]');
  assert.equal(await statusOf("#entry-status"), "verified", await page.textContent("#checks"));
  assert.match(await page.textContent("#checks"), /signed entry timestamp/);
  assert.match(await page.textContent("#entry-overview"), /hashedrekord 0\.0\.1/);

  await open("#/search?log=artifacts&kind=index&q=4");
  await page.waitForSelector('body[data-ready="#/entry/artifacts/4"]');
  assert.equal(await statusOf("#entry-status"), "verified");

  // The public key of the certificate in entry 0's body, as a PEM.
  const body = JSON.parse(Buffer.from(leaf).toString("utf8"));
  const pem = Buffer.from(body.spec.signature.publicKey.content, "base64").toString("utf8");
  await open("#/search?log=artifacts");
  await page.fill("#search-q", pem);
  await page.selectOption("#search-kind", "publicKey");
  await page.click("#search-go");
  await page.waitForSelector("#result-table a.result, #no-results, #search-error", { timeout: 30000 });
  assert.deepEqual(await page.locator("#result-table a.result").allTextContents(), ["5"]);
});

test("the certificate log: search, a decoded certificate, verified", async () => {
  await open(`#/search?log=certificates&kind=identity&q=${encodeURIComponent(IDENTITY)}`);
  const found = await page.locator("#result-table a.result").allTextContents();
  assert.ok(found.length >= 2, found.join(","));
  await open(`#/entry/certificates/${found[1]}`);
  assert.equal(await statusOf("#entry-status"), "verified", await page.textContent("#checks"));
  assert.equal(await page.textContent("#signer"), IDENTITY);
  assert.match(await page.textContent("#certificate"), /code signing/);
  await screenshot("certificate", false);
});

test("the log page: checkpoint, witnesses, growth, and consistency since the last visit", async () => {
  await open("#/log/artifacts");
  assert.equal(await statusOf("#log-status"), "verified", await page.textContent("main"));
  assert.equal(await statusOf("#witness-status"), "verified");
  assert.match(await page.textContent("#consistency"), /First visit/);
  assert.equal(await page.locator("#growth svg.plot path.growth").count(), 1);
  // The growth read: bounded, sizes rising to the log's, each with its integrated time.
  const growth = await (await get(`${proxyUrl}/logs/artifacts/growth?points=3`)).json();
  assert.deepEqual(growth.points.map(([size]) => size), [1, 3, 6]);
  assert.ok(growth.points.every(([, time]) => Number.isInteger(time)));
  assert.equal((await fetch(`${proxyUrl}/logs/artifacts/growth?points=257`)).status, 400);
  // The log grows; the next visit proves the new checkpoint consistent with the one seen.
  await signAndWait("later.txt", 7);
  await open("#/log/artifacts");
  assert.equal(await statusOf("#consistency-status"), "verified", await page.textContent("#consistency"));
  assert.match(await page.textContent("#consistency"), /size 6, root \S+\. Now: size 7\./);
  await screenshot("log");
});

test("tampered answers show as failed, never verified", async () => {
  try {
    tamper = "inclusion";
    await open("#/entry/artifacts/2");
    assert.equal(await statusOf("#entry-status"), "failed");
    assert.match(await page.textContent("#checks"), /does not lead from this entry to the signed root/);
    await screenshot("tampered-proof", false);

    tamper = "checkpoint";
    await open("#/entry/artifacts/2");
    assert.equal(await statusOf("#entry-status"), "failed");
    await open("#/log/certificates");
    assert.equal(await statusOf("#log-status"), "failed");

    tamper = "entry";
    await open("#/entry/artifacts/2");
    assert.equal(await statusOf("#entry-status"), "failed");

    // /logs names another key for the certificate log than the trusted root does.
    otherKey = await makeOtherKey("certificates.cairn.localhost");
    tamper = "key";
    await open("#/entry/certificates/1");
    assert.equal(await statusOf("#entry-status"), "failed");
    assert.match(await page.textContent("#checks"), /\/logs names another key than the trusted root/);

    // A trusted root that leaves the certificate log out: no key from /logs stands in.
    tamper = "root";
    await open("#/entry/certificates/1");
    assert.equal(await statusOf("#entry-status"), "failed");
    assert.match(await page.textContent("#checks"), /lists no checkpoint key for certificates\.cairn\.localhost/);
    await open("#/log/certificates");
    assert.equal(await statusOf("#log-status"), "failed");

    // A node that says its log is not witnessed (any more): the pinned policy says otherwise.
    tamper = "unwitnessed";
    await open("#/entry/artifacts/2");
    assert.equal(await statusOf("#entry-status"), "failed");
    assert.match(await page.textContent("#checks"), /no longer witnessed/);

    tamper = "cosignature";
    await open("#/entry/artifacts/2");
    assert.equal(await statusOf("#entry-status"), "failed");
    assert.match(await page.textContent("#checks"), /witness quorum/);

    // A consistency proof that does not hold: the log page fails and keeps what was seen.
    tamper = "consistency";
    await signAndWait("last.txt", 8);
    await open("#/log/artifacts");
    assert.equal(await statusOf("#consistency-status"), "failed");
    assert.equal(await statusOf("#log-status"), "failed");
    tamper = "none";
    await open("#/log/artifacts");
    assert.equal(await statusOf("#consistency-status"), "verified", await page.textContent("#consistency"));
    assert.match(await page.textContent("#consistency"), /size 7, root \S+\. Now: size 8\./);
  } finally {
    tamper = "none";
  }
});

test("across a rotation of the artifact log: the frozen log and its successor verify", async () => {
  const dir = path.join(work, "cluster");
  const nodeUrl = `http://127.0.0.1:${base + 1}`;
  // Step 1: the successor in every config, and a restart: served, empty, not opened.
  await stopDev();
  run(NODE_BIN, ["log", "prepare", "--dir", dir, "--log", "artifacts"]);
  dev = await startDev(["--witness-policy", path.join(work, "witnesses.txt")]);
  await waitForSize("artifacts", 8);
  // Not in the trusted root yet, so not verified, whatever /logs says of its key.
  await open("#/log/artifacts-2");
  assert.equal(await statusOf("#log-status"), "pending", await page.textContent("main"));
  assert.match(await page.textContent("main"), /prepared but not opened yet/);

  // Step 2: freeze `artifacts`, open `artifacts-2`; the next entries go to the successor.
  run(NODE_BIN, ["log", "rotate", "--url", nodeUrl, "--admin-token-file", path.join(dir, "admin-token"), "--log", "artifacts"]);
  const files = [1, 2].map((i) => path.join(work, `after-rotation-${i}.txt`));
  files.forEach((file, i) => fs.writeFileSync(file, `artifact ${i + 1} signed after the rotation\n`));
  cairn(["sign", "--url", `http://127.0.0.1:${base}`, ...files]);
  await waitForSize("artifacts-2", 2);
  const root = await (await get(`${nodeUrl}/trust/trusted_root.json`)).json();
  assert.deepEqual(
    root.tlogs.map((tlog) => [new URL(tlog.baseUrl).hostname.split(".")[0], "end" in tlog.publicKey.validFor]),
    [["artifacts", true], ["artifacts", true], ["artifacts-2", false], ["artifacts-2", false], ["certificates", false]],
  );

  // An entry of the frozen log: its key from the trusted root, with the end of its window.
  await open("#/entry/artifacts/2");
  assert.equal(await statusOf("#entry-status"), "verified", await page.textContent("#checks"));
  assert.match(await page.textContent("#checks"), /signed entry timestamp/);
  assert.match(await page.textContent("#checks"), /in the log key's validity window \(\S+ to \S+\)/);
  assert.match(await page.textContent("#key-window"), /^\S+ to \S+$/);
  await screenshot("frozen-entry", false);
  await open("#/log/artifacts");
  assert.equal(await statusOf("#log-status"), "verified", await page.textContent("main"));
  assert.match(await page.textContent("main"), /the log is frozen/);

  // The successor: searchable, its entry verified under its own key, its window open.
  await open(`#/search?log=artifacts-2&kind=identity&q=${encodeURIComponent(IDENTITY)}`);
  assert.deepEqual(await page.locator("#result-table a.result").allTextContents(), ["0", "1"]);
  const digest = createHash("sha256").update(fs.readFileSync(files[1])).digest("hex");
  await open(`#/search?log=artifacts-2&kind=hash&q=sha256:${digest}`);
  const found = await page.locator("#result-table a.result").allTextContents();
  assert.equal(found.length, 1);
  await open(`#/entry/artifacts-2/${found[0]}`);
  assert.match(await page.textContent("#entry-overview"), new RegExp(`:${digest}`));
  assert.equal(await statusOf("#entry-status"), "verified", await page.textContent("#checks"));
  assert.equal(await page.textContent("#signer"), IDENTITY);
  assert.match(await page.textContent("#key-window"), /^from \S+, open$/);
  assert.match(await page.textContent("main"), /artifacts-2\.cairn\.localhost/);
  await open("#/log/artifacts-2");
  assert.equal(await statusOf("#log-status"), "verified", await page.textContent("main"));

  // Tampered proofs fail on both sides of the rotation.
  try {
    tamper = "inclusion";
    for (const hash of ["#/entry/artifacts/2", "#/entry/artifacts-2/0", "#/entry/artifacts-2/1"]) {
      await open(hash);
      assert.equal(await statusOf("#entry-status"), "failed", hash);
      assert.match(await page.textContent("#checks"), /does not lead from this entry to the signed root/);
    }
    tamper = "checkpoint";
    await open("#/entry/artifacts-2/0");
    assert.equal(await statusOf("#entry-status"), "failed");
  } finally {
    tamper = "none";
  }
});

test("an unwitnessed one-node dev cluster, as `cairn-node dev` starts by default", async () => {
  const plain = await freeBasePort();
  const dir = path.join(work, "plain");
  const child = start(NODE_BIN, ["dev", "--nodes", "1", "--base-port", String(plain), "--dir", dir], "plain.log");
  try {
    await waitFor("the one-node dev cluster", () => JSON.parse(fs.readFileSync(path.join(dir, "cluster.json"), "utf8")));
    origin = `http://127.0.0.1:${plain}`;
    // An empty log first: its size-0 checkpoint verifies, and the plot waits for history.
    await open("#/log/artifacts");
    assert.equal(await statusOf("#log-status"), "verified", await page.textContent("main"));
    assert.match(await page.textContent("main"), /This log is not witnessed/);
    cairn(["login", "--dev", IDENTITY, "--dev-issuer", `http://127.0.0.1:${plain + 300}`], "plain-home");
    const file = path.join(work, "plain.txt");
    fs.writeFileSync(file, "an artifact in an unwitnessed log\n");
    cairn(["sign", "--url", origin, file], "plain-home");
    await open("#/entry/artifacts/0");
    assert.equal(await statusOf("#entry-status"), "verified", await page.textContent("#checks"));
    assert.doesNotMatch(await page.textContent("#checks"), /witness/);
    assert.equal(await page.textContent("#signer"), IDENTITY);
    await open("#/log/artifacts");
    assert.equal(await statusOf("#consistency-status"), "verified", await page.textContent("#consistency"));
    assert.match(await page.textContent("#consistency"), /size 0, root \S+\. Now: size 1\./);
  } finally {
    origin = proxyUrl;
    child.kill("SIGTERM");
    await new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once("exit", resolve)));
  }
});

test("the page broke no rule: no CSP violation, no error, no other host", () => {
  assert.deepEqual(problems, []);
});
