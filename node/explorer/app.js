// The Cairn log explorer: search, entry and log pages over this node's read APIs. Every request
// goes to the node that served the page (relative URLs; the Content-Security-Policy allows no
// other host). What is shown as verified was checked here (verify.js, policy.js) against the
// log keys of the node's trusted root, pinned in localStorage on the first visit; anything that
// does not check out is shown as failed, with the reason.

import {
  decimal,
  fromBase64,
  fromHex,
  inWindow,
  leafHash,
  openCheckpoint,
  parseVerifierKey,
  sha256,
  toBase64,
  toHex,
  trustedLogKeys,
  utf8,
  verifyConsistency,
  verifyInclusion,
  verifySignedEntryTimestamp,
} from "./verify.js";
import { checkCosignatures, parsePolicy } from "./policy.js";
import { decodeTbs, describeDer, parseCtLeaf, parseDer, pemToDer } from "./der.js";
import { growthPlot } from "./plot.js";

const PAGE_SIZE = 20;
const FILE_BYTES_MAX = 1 << 30;
const STORE = "cairn-explorer:";

// ---- DOM helpers: elements and text nodes only, never markup strings ----

function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function badge(status, id) {
  return h("span", { class: `badge ${status}`, id, "data-status": status }, status);
}

function row(label, ...value) {
  return h("tr", {}, h("th", {}, label), h("td", {}, ...value));
}

function mono(text) {
  return h("span", { class: "mono" }, text);
}

function show(...children) {
  const main = document.getElementById("main");
  main.replaceChildren(...children);
}

function time(ms) {
  const date = new Date(Number(ms));
  return Number.isFinite(date.getTime()) ? date.toISOString().replace(".000Z", "Z") : "unknown";
}

// ---- Requests: this node only ----

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function request(path, kind) {
  if (!path.startsWith("/")) throw new Error("only this node is asked");
  const response = await fetch(path, { cache: "no-store", credentials: "omit", redirect: "error" });
  if (!response.ok) {
    let message = `${response.status}`;
    try {
      const body = await response.json();
      message = `${response.status} ${body.code}: ${body.message}`;
    } catch {
      // Not a JSON error: the status says enough.
    }
    throw new HttpError(response.status, message);
  }
  if (kind === "json") return response.json();
  if (kind === "text") return response.text();
  return new Uint8Array(await response.arrayBuffer());
}

const getJson = (path) => request(path, "json");
const getText = (path) => request(path, "text");
const getBytes = (path) => request(path, "bytes");

// ---- Pinned state (localStorage) ----

function load(key) {
  try {
    return JSON.parse(localStorage.getItem(STORE + key) ?? "null");
  } catch {
    return null;
  }
}

function save(key, value) {
  try {
    localStorage.setItem(STORE + key, JSON.stringify(value));
  } catch {
    // Private browsing without storage: nothing is remembered.
  }
}

// ---- The logs and their keys ----

/** Per log name: `{name, origin, state, verifier, source, problem, waiting}`. */
let logs = new Map();

/**
 * The logs this node serves and the key each checkpoint must verify under: the trusted root's,
 * which must list every log (artifact and certificate logs, frozen ones with the end of their
 * window), and /logs must agree; pinned on first use, so a key that changes later is a
 * failure, not a silent switch. A log the root does not list has no key here: its checkpoints
 * fail (or wait, for a successor /logs says is not opened yet), whatever key /logs names.
 */
async function loadLogs() {
  if (!globalThis.crypto?.subtle) {
    throw new Error(
      "this page is not a secure context (HTTPS or loopback), so the browser offers no WebCrypto: nothing can be verified",
    );
  }
  const [listed, root] = await Promise.all([
    getJson("/logs"),
    getJson("/trust/trusted_root.json").catch(() => null),
  ]);
  const trusted = root ? await trustedLogKeys(root) : { verifiers: [], notes: ["no trusted root"] };
  const pins = load("keys") ?? {};
  const found = new Map();
  for (const log of (listed.logs ?? []).slice(0, 16)) {
    if (!/^[a-z0-9_-]{1,64}$/.test(log.name)) continue;
    const state = ["open", "frozen", "waiting"].includes(log.state) ? log.state : "open";
    const entry = { name: log.name, origin: log.origin, state, verifier: null, source: "", problem: "", waiting: false };
    let listedKey = null;
    try {
      listedKey = await parseVerifierKey(log.verifier_key);
    } catch (error) {
      entry.problem = `its verifier key does not parse: ${error.message}`;
    }
    const fromRoot = trusted.verifiers.find((verifier) => verifier.name === log.origin);
    if (fromRoot) {
      entry.verifier = fromRoot;
      entry.source = "the trusted root (/trust/trusted_root.json), its key id checked";
      if (listedKey && listedKey.vkey !== fromRoot.vkey) {
        entry.problem = "/logs names another key than the trusted root";
      }
    } else if (state === "waiting") {
      // A prepared successor: the root lists a log from its opening. Not verified either way.
      entry.waiting = true;
      entry.problem = "this log is prepared but not opened yet: the trusted root lists it once it opens";
    } else {
      entry.problem = root
        ? `the trusted root (/trust/trusted_root.json) lists no checkpoint key for ${log.origin}: nothing verifies this log`
        : "this node serves no trusted root (/trust/trusted_root.json): nothing verifies this log";
    }
    if (entry.verifier) {
      const pinned = pins[entry.origin];
      if (pinned && pinned !== entry.verifier.vkey) {
        entry.problem = `the log's key changed since you pinned ${pinned}`;
      } else if (!pinned) {
        pins[entry.origin] = entry.verifier.vkey;
      }
    }
    found.set(log.name, entry);
  }
  save("keys", pins);
  logs = found;
  const nav = document.getElementById("nav");
  nav.replaceChildren(
    h("a", { href: "#/" }, "Search"),
    ...[...logs.keys()].map((name) => h("a", { href: `#/log/${name}` }, `Log: ${name}`)),
    h("a", { href: "#/about" }, "What is checked"),
  );
}

function logNamed(name) {
  const log = logs.get(name);
  if (!log) throw new Error(`this node serves no log named ${name}`);
  return log;
}

/**
 * The log's current checkpoint, checked: `{status, reason, checkpoint, note, text}`. A log
 * whose key is in doubt fails whatever its signature.
 */
async function currentCheckpoint(log) {
  let text;
  try {
    text = await getText(`/logs/${log.name}/checkpoint`);
  } catch (error) {
    // A witnessed log before its first quorum: nothing is published yet.
    if (error.status === 503) return { status: "pending", reason: error.message, text: "" };
    throw error;
  }
  if (!log.verifier) return { status: log.waiting ? "pending" : "failed", reason: log.problem || "no key to verify it with", text };
  const opened = await openCheckpoint(text, log.verifier);
  if (log.problem) return { ...opened, text, status: "failed", reason: log.problem };
  return { ...opened, text, status: opened.verified ? "verified" : "failed", reason: opened.reason };
}

/**
 * The witnesses of a witnessed log and the cosignatures on `opened` (a checked checkpoint):
 * `{witnessed, status, reason, witnesses}` with each witness's check, or `{witnessed:
 * false}`.
 */
async function witnessCheck(log, opened) {
  const answer = await getJson(`/logs/${log.name}/witnesses`);
  // The policy is pinned like the keys: a node that drops its witnesses, or swaps them, must
  // not have its unwitnessed checkpoints shown as verified.
  const policyText = answer.witnessed ? String(answer.policy ?? "") : "";
  const pins = load("policies") ?? {};
  const pinned = pins[log.origin];
  if (pinned !== undefined && pinned !== policyText) {
    const reason = policyText
      ? "the witness policy changed since this browser pinned it"
      : "the log is no longer witnessed, but was when this browser pinned its policy";
    return { witnessed: true, status: "failed", reason, witnesses: [], policy: policyText, quorum: "?" };
  }
  if (pinned === undefined) save("policies", { ...pins, [log.origin]: policyText });
  if (!answer.witnessed) return { witnessed: false, status: "verified", witnesses: [] };
  const sizes = new Map((answer.witnesses ?? []).map((w) => [w.name, w.cosigned_size]));
  let policy;
  try {
    policy = await parsePolicy(answer.policy);
  } catch (error) {
    return { witnessed: true, status: "failed", reason: `the tlog-policy: ${error.message}`, witnesses: [] };
  }
  const listsLog = policy.logs.some((key) => log.verifier && key.vkey === log.verifier.vkey);
  if (!opened.note) {
    return { witnessed: true, status: "failed", reason: "no checkpoint to check", witnesses: [], sizes };
  }
  const checked = await checkCosignatures(policy, opened.note);
  let status = checked.met && listsLog ? "verified" : "failed";
  let reason = "";
  if (!listsLog) reason = "the policy does not list this log's key";
  else if (!checked.met) reason = "the cosignatures do not meet the policy's quorum";
  return { witnessed: true, status, reason, witnesses: checked.witnesses, sizes, policy: answer.policy, quorum: policy.quorum };
}

function witnessTable(check) {
  if (!check.witnessed) return h("p", { class: "muted" }, "This log is not witnessed: its checkpoints are signed by the log alone.");
  return h(
    "div",
    {},
    h("p", {}, "Quorum ", mono(check.quorum ?? "?"), " of the tlog-policy: ", badge(check.status, "witness-status"), check.reason ? h("span", { class: "why" }, ` ${check.reason}`) : ""),
    h(
      "table",
      { class: "list" },
      h("tr", {}, h("th", {}, "witness"), h("th", {}, "cosignature on this checkpoint"), h("th", {}, "cosigned at"), h("th", {}, "latest size it cosigned (node's view)")),
      ...check.witnesses.map((witness) =>
        h(
          "tr",
          {},
          h("td", {}, h("div", {}, witness.name), h("div", { class: "mono muted" }, witness.vkey)),
          h("td", {}, witness.status === "absent" ? h("span", { class: "muted" }, "none") : badge(witness.status)),
          h("td", {}, witness.timestamp === null ? "" : time(Number(witness.timestamp) * 1000)),
          h("td", {}, String(check.sizes?.get(witness.name) ?? "not known yet")),
        ),
      ),
    ),
    h("details", {}, h("summary", {}, "The tlog-policy"), h("pre", {}, check.policy ?? "")),
  );
}

function checkpointTable(opened) {
  const checkpoint = opened.checkpoint;
  return h(
    "table",
    {},
    row("Signature", badge(opened.status, "checkpoint-status"), opened.reason ? h("span", { class: "why" }, ` ${opened.reason}`) : ""),
    checkpoint ? row("Origin", mono(checkpoint.origin)) : null,
    checkpoint ? row("Tree size", mono(String(checkpoint.size))) : null,
    checkpoint ? row("Root hash", mono(toBase64(checkpoint.root))) : null,
    row("Signed note", h("pre", {}, opened.text ?? "")),
  );
}

function windowText(window) {
  if (!window) return "unknown";
  return window.end === null ? `from ${time(window.start)}, open` : `${time(window.start)} to ${time(window.end)}`;
}

function keyRow(log) {
  return [
    row(
      "Log key",
      h("div", { class: "mono" }, log.verifier?.vkey ?? "none"),
      h("div", { class: "muted" }, `from ${log.source || "nowhere"}`),
      log.problem ? h("div", { class: "why" }, log.problem) : "",
    ),
    row("Key valid", h("span", { id: "key-window" }, windowText(log.verifier?.window)), " ", h("span", { class: "muted" }, `(the trusted root's validFor; the log is ${log.state})`)),
  ];
}

/** The check that an entry's time is in its log key's window: a frozen log's key signs
 * nothing after its rotation, a successor's nothing before its opening. */
function windowCheck(log, ms, check) {
  const window = log.verifier?.window;
  const inside = window ? inWindow(window, ms) : false;
  check(
    `the integrated time is in the log key's validity window (${windowText(window)})`,
    inside ? "verified" : "failed",
    inside ? "" : `${time(ms)} is outside the window the trusted root gives this key`,
  );
}

// ---- Search ----

const KINDS = {
  identity: "Identity (e-mail or URI)",
  hash: "Artifact digest",
  publicKey: "Public key (PEM)",
  index: "Log index",
  uuid: "UUID (leaf hash)",
};

function searchForm(params) {
  const log = h("select", { name: "log", id: "search-log" }, ...[...logs.keys()].map((name) => h("option", { value: name, selected: params.get("log") === name }, name)));
  const kind = h("select", { name: "kind", id: "search-kind" }, ...Object.entries(KINDS).map(([value, label]) => h("option", { value, selected: params.get("kind") === value }, label)));
  const value = h("textarea", { name: "q", id: "search-q", rows: 1, placeholder: "alice@example.com, sha256:…, a PEM key, 42, or a UUID", required: true });
  value.value = params.get("q") ?? "";
  const form = h(
    "form",
    {
      class: "search",
      id: "search-form",
      onsubmit: (event) => {
        event.preventDefault();
        const query = new URLSearchParams({ log: log.value, kind: kind.value, q: value.value.trim() });
        location.hash = `#/search?${query}`;
      },
    },
    log,
    kind,
    value,
    h("button", { class: "primary", type: "submit", id: "search-go" }, "Search"),
  );
  const fileInput = h("input", { type: "file", id: "search-file", class: "visually-hidden" });
  const drop = h(
    "div",
    { class: "drop", id: "drop" },
    "Drop a file here, or ",
    h("button", { type: "button", onclick: () => fileInput.click() }, "choose one"),
    ", to search by its SHA-256, computed in this browser: the file is not sent anywhere.",
    fileInput,
  );
  const hashFile = async (file) => {
    if (!file) return;
    if (file.size > FILE_BYTES_MAX) {
      drop.textContent = `${file.name} is larger than 1 GiB; hash it with sha256sum and search the digest`;
      return;
    }
    drop.textContent = `hashing ${file.name}…`;
    const digest = toHex(await sha256(new Uint8Array(await file.arrayBuffer())));
    const query = new URLSearchParams({ log: log.value, kind: "hash", q: `sha256:${digest}` });
    location.hash = `#/search?${query}`;
  };
  fileInput.addEventListener("change", () => hashFile(fileInput.files[0]));
  drop.addEventListener("dragover", (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    hashFile(event.dataTransfer.files[0]);
  });
  return h("section", {}, h("h2", {}, "Search a log"), form, drop);
}

/** The hex SHA-256 of a key's canonical PEM (64-column base64), the index's key hash. */
async function publicKeyHash(text) {
  const { label, der } = pemToDer(text);
  const lines = toBase64(der).match(/.{1,64}/g) ?? [];
  const pem = `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
  return toHex(await sha256(utf8(pem)));
}

async function searchPage(params) {
  const form = searchForm(params);
  const logName = params.get("log") ?? [...logs.keys()][0];
  const kind = params.get("kind");
  const q = (params.get("q") ?? "").trim();
  if (!kind || !q) {
    show(h("h1", {}, "Search"), form);
    return;
  }
  const results = h("section", { id: "results" }, h("p", { class: "muted" }, "Searching…"));
  show(h("h1", {}, "Search"), form, results);
  try {
    const log = logNamed(logName);
    if (kind === "index") {
      location.hash = `#/entry/${log.name}/${decimal(q)}`;
      return;
    }
    if (kind === "uuid") {
      // Rekor's 80-digit UUIDs start with a 16-digit tree id.
      const hex = q.toLowerCase().replace(/^[0-9a-f]{16}(?=[0-9a-f]{64}$)/, "");
      if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error("a UUID is 64 hex digits (80 with Rekor's tree id)");
      const proof = await getJson(`/logs/${log.name}/proof/inclusion?leaf_hash=${hex}`);
      location.hash = `#/entry/${log.name}/${decimal(proof.leaf_index)}`;
      return;
    }
    const limit = /^[1-9][0-9]?$/.test(params.get("limit") ?? "") ? params.get("limit") : String(PAGE_SIZE);
    const query = new URLSearchParams({ log: log.name, limit });
    if (kind === "identity") query.set("identity", q);
    else if (kind === "hash") query.set("hash", q.includes(":") ? q.toLowerCase() : `sha256:${q.toLowerCase()}`);
    else if (kind === "publicKey") query.set("publicKeyHash", await publicKeyHash(q));
    else throw new Error(`unknown search ${kind}`);
    const after = params.get("after");
    if (after) query.set("after", String(decimal(after)));
    const page = await getJson(`/api/v1/cairn/index?${query}`);
    const entries = page.entries ?? [];
    // The cursors of the pages before this one ("-": the first page), so "previous" works.
    const back = (params.get("back") ?? "").split(",").filter((cursor) => /^(-|[0-9]+)$/.test(cursor));
    const link = (cursor, cursors) => {
      const next = new URLSearchParams(params);
      if (cursor === "-") next.delete("after");
      else next.set("after", cursor);
      next.set("back", cursors.join(","));
      return `#/search?${next}`;
    };
    results.replaceChildren(
      h("h2", {}, `${entries.length} ${entries.length === 1 ? "entry" : "entries"} on this page, in ${log.name} (of ${page.treeSize} in the log)`),
      entries.length === 0
        ? h("p", { class: "muted", id: "no-results" }, "No entry matches.")
        : h(
            "table",
            { class: "list", id: "result-table" },
            h("tr", {}, h("th", {}, "log index"), h("th", {}, "UUID (leaf hash)")),
            ...entries.map((entry) =>
              h("tr", {}, h("td", {}, h("a", { href: `#/entry/${log.name}/${decimal(entry.logIndex)}`, class: "result" }, String(entry.logIndex))), h("td", {}, mono(entry.uuid))),
            ),
          ),
      h(
        "div",
        { class: "pager" },
        back.length > 0
          ? h("a", { href: link(back[back.length - 1], back.slice(0, -1)), id: "page-previous" }, "← previous page")
          : "",
        page.next !== null && page.next !== undefined
          ? h("a", { href: link(String(decimal(page.next)), [...back, after ?? "-"]), id: "page-next" }, "next page →")
          : h("span", { class: "muted" }, "last page"),
      ),
    );
  } catch (error) {
    results.replaceChildren(h("p", { class: "error", id: "search-error" }, error.message));
  }
}

// ---- An entry ----

/** What an artifact-log body says: kind, version, digests, and the certificates or keys. */
function describeBody(leaf) {
  const body = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(leaf));
  const digests = [];
  const material = [];
  const walk = (value, path) => {
    if (Array.isArray(value)) {
      value.slice(0, 64).forEach((item, i) => walk(item, `${path}[${i}]`));
      return;
    }
    if (!value || typeof value !== "object") return;
    if (typeof value.algorithm === "string" && typeof (value.value ?? value.digest) === "string") {
      const hex = value.value ?? toHex(fromBase64(value.digest));
      digests.push({ path, algorithm: value.algorithm, hex });
    }
    for (const [key, inner] of Object.entries(value)) {
      if (typeof inner !== "string") {
        walk(inner, `${path}.${key}`);
        continue;
      }
      try {
        if (key === "rawBytes") material.push({ path: `${path}.${key}`, der: fromBase64(inner) });
        else if ((key === "content" && path.endsWith("publicKey")) || key === "verifier" || key === "publicKey") {
          material.push({ path: `${path}.${key}`, der: pemToDer(new TextDecoder().decode(fromBase64(inner))).der });
        }
      } catch {
        // Not key material after all.
      }
    }
  };
  walk(body.spec, "spec");
  return { kind: body.kind, version: body.apiVersion, body, digests, material };
}

function certificateTable(certificate, id) {
  return h(
    "table",
    { id },
    row("Subject alternative names", ...certificate.sans.map((san) => h("div", { class: "san" }, `${san.kind}: ${san.value}`))),
    row("OIDC issuer", certificate.oidcIssuer ?? "none"),
    row("Valid", `${time(certificate.notBefore)} to ${time(certificate.notAfter)}`),
    row("Issuer", certificate.issuer),
    row("Subject", certificate.subject || "(empty)"),
    row("Serial", mono(certificate.serial)),
    row("Key", certificate.key),
    ...certificate.extensions.map((extension) =>
      row(`${extension.name}${extension.critical ? " (critical)" : ""}`, h("span", { class: extension.fulcio ? "fulcio" : "" }, extension.value)),
    ),
  );
}

async function entryPage(logName, indexText) {
  const log = logNamed(logName);
  const index = decimal(indexText);
  const status = badge("pending", "entry-status");
  const checks = h("ul", { class: "checks", id: "checks" });
  const overview = h("table", { id: "entry-overview" }, row("Log", h("a", { href: `#/log/${log.name}` }, log.name), " ", mono(log.origin)), row("Log index", mono(String(index))));
  const details = h("div", {});
  show(h("h1", {}, `Entry ${index} of ${log.name}`, status), h("section", {}, overview), h("section", {}, h("h2", {}, "Verification in this browser"), checks), details);
  const results = [];
  const check = (label, result, reason) => {
    results.push(result);
    checks.append(h("li", {}, badge(result), ` ${label}`, reason ? h("span", { class: result === "failed" ? "why" : "muted" }, ` — ${reason}`) : ""));
  };
  const finish = () => {
    const overall = results.includes("failed") ? "failed" : results.includes("pending") ? "pending" : "verified";
    status.replaceWith(badge(overall, "entry-status"));
  };
  try {
    const opened = await currentCheckpoint(log);
    check("the checkpoint is signed by the log's key", opened.status, opened.reason);
    if (!opened.checkpoint) {
      finish();
      return;
    }
    if (index >= opened.checkpoint.size) {
      check("the entry is in the checkpoint", "pending", `the published checkpoint has ${opened.checkpoint.size} entries; this one is not in it yet`);
      finish();
      return;
    }
    const leaf = await getBytes(`/logs/${log.name}/entries/${index}`);
    const hash = await leafHash(leaf);
    overview.append(row("UUID (leaf hash)", mono(toHex(hash))));
    const proof = await getJson(`/logs/${log.name}/proof/inclusion?index=${index}&tree_size=${opened.checkpoint.size}`);
    const hashes = (proof.hashes ?? []).slice(0, 64).map(fromBase64);
    const included = await verifyInclusion(index, opened.checkpoint.size, hash, hashes, opened.checkpoint.root);
    check(`the entry is included in the checkpoint's tree of ${opened.checkpoint.size} (RFC 6962 inclusion proof, ${hashes.length} hashes)`, included ? "verified" : "failed", included ? "" : "the proof does not lead from this entry to the signed root");
    const witnesses = await witnessCheck(log, opened);
    if (witnesses.witnessed) check("the checkpoint is cosigned by the tlog-policy's witness quorum", witnesses.status, witnesses.reason);
    let integrated = null;
    if (leaf[0] === 0x7b) {
      integrated = await artifactDetails(log, index, leaf, details, overview, check);
    } else {
      integrated = certificateDetails(leaf, details, overview);
      if (integrated !== null) {
        overview.append(row("Integrated time", `${time(integrated)} `, h("span", { class: "muted" }, "(the leaf's timestamp, covered by the inclusion proof)")));
      }
    }
    if (integrated !== null) windowCheck(log, integrated, check);
    details.append(
      h("section", {}, h("h2", {}, "Checkpoint"), h("table", {}, ...keyRow(log)), checkpointTable(opened)),
      h("section", {}, h("h2", {}, "Witnesses"), witnessTable(witnesses)),
      h("section", {}, h("h2", {}, "Inclusion proof"), h("pre", { id: "inclusion-proof" }, hashes.map(toBase64).join("\n") || "(empty: the tree has one entry)")),
    );
  } catch (error) {
    check("the log answered", "failed", error.message);
  }
  finish();
}

/** The artifact log's entry: body, digest, signer, and the signed integrated time. */
async function artifactDetails(log, index, leaf, details, overview, check) {
  let described;
  try {
    described = describeBody(leaf);
  } catch (error) {
    check("the entry is a Rekor body", "failed", error.message);
    return null;
  }
  overview.append(row("Kind and version", mono(`${described.kind} ${described.version}`)));
  for (const digest of described.digests) {
    overview.append(row(`Digest (${digest.path.replace(/^spec\.?/, "") || "spec"})`, mono(`${digest.algorithm}:${digest.hex}`), " ", h("a", { href: `#/search?${new URLSearchParams({ log: log.name, kind: "hash", q: `sha256:${digest.hex}` })}` }, "entries with this digest")));
  }
  let n = 0;
  for (const { path, der } of described.material) {
    let what;
    try {
      what = describeDer(der);
    } catch (error) {
      overview.append(row(path, h("span", { class: "why" }, error.message)));
      continue;
    }
    if (what.kind === "certificate") {
      const identity = what.sans.map((san) => san.value).join(", ");
      overview.append(row("Signer", h("span", { id: n === 0 ? "signer" : undefined }, identity || "(no SAN)")), row("OIDC issuer", what.oidcIssuer ?? "none"));
      details.append(h("section", {}, h("h2", {}, `Certificate (${path})`), certificateTable(what, n === 0 ? "certificate" : undefined)));
      n++;
    } else {
      overview.append(row("Signer", `a ${what.algorithm} public key (${path})`));
    }
  }
  // The integrated time: Rekor v1's entry carries it under the log key's signed entry
  // timestamp, over this very body. Each artifact log (a frozen one too) has its own v1 API.
  try {
    const answer = await getJson(`/logs/${log.name}/api/v1/log/entries?logIndex=${index}`);
    const entry = Object.values(answer)[0];
    const body = toBase64(leaf);
    const logId = toHex(await sha256(concatSpki(log.verifier.publicKey)));
    const set = fromBase64(entry.verification.signedEntryTimestamp);
    const signed =
      entry.body === body &&
      entry.logID === logId &&
      entry.logIndex === Number(index) &&
      (await verifySignedEntryTimestamp(log.verifier.publicKey, entry, set));
    check("the integrated time is signed by the log's key (signed entry timestamp)", signed ? "verified" : "failed", signed ? "" : "the signed entry timestamp does not verify for this entry");
    overview.append(row("Integrated time", time(entry.integratedTime * 1000)));
    return entry.integratedTime * 1000;
  } catch (error) {
    overview.append(row("Integrated time", h("span", { class: "muted" }, `not known: ${error.message}`)));
    return null;
  } finally {
    details.append(h("section", {}, h("h2", {}, "Canonical body"), h("pre", { id: "body" }, JSON.stringify(described.body, null, 2))));
  }
}

function concatSpki(key) {
  const spki = new Uint8Array(44);
  spki.set(fromHex("302a300506032b6570032100"));
  spki.set(key, 12);
  return spki;
}

/** The certificate log's entry: a precertificate or certificate, decoded. */
function certificateDetails(leaf, details, overview) {
  let entry;
  try {
    entry = parseCtLeaf(leaf);
  } catch (error) {
    overview.append(row("Entry", h("span", { class: "why" }, error.message)));
    return null;
  }
  overview.append(row("Kind", entry.type === "x509" ? "certificate (RFC 6962 x509_entry)" : "precertificate (RFC 6962 precert_entry)"));
  try {
    const decoded = entry.type === "x509" ? describeDer(entry.certificate) : decodeTbs(parseDer(entry.tbs));
    overview.append(row("Signer", h("span", { id: "signer" }, decoded.sans.map((san) => san.value).join(", ") || "(no SAN)")), row("OIDC issuer", decoded.oidcIssuer ?? "none"));
    details.append(h("section", {}, h("h2", {}, entry.type === "x509" ? "Certificate" : "Precertificate (TBSCertificate)"), certificateTable(decoded, "certificate")));
  } catch (error) {
    overview.append(row("Certificate", h("span", { class: "why" }, error.message)));
  }
  return Number(entry.timestampMs);
}

// ---- A log ----

async function logPage(logName) {
  const log = logNamed(logName);
  const status = badge("pending", "log-status");
  const summary = h("table", {}, row("Origin", mono(log.origin)), ...keyRow(log));
  const consistency = h("div", { id: "consistency" }, h("p", { class: "muted" }, "…"));
  const witnessing = h("div", {}, h("p", { class: "muted" }, "…"));
  const plot = h("div", { id: "growth" }, h("p", { class: "muted" }, "…"));
  const checkpointBox = h("div", {});
  show(
    h("h1", {}, `Log ${log.name}`, status),
    h("section", {}, summary, checkpointBox),
    h("section", {}, h("h2", {}, "Since your last visit"), consistency),
    h("section", {}, h("h2", {}, "Witnesses"), witnessing),
    h("section", {}, h("h2", {}, "Growth"), plot),
  );
  const results = [];
  try {
    const opened = await currentCheckpoint(log);
    results.push(opened.status);
    checkpointBox.append(checkpointTable(opened));
    if (!opened.note) throw new Error(`no checkpoint to check: ${opened.reason}`);
    const witnesses = await witnessCheck(log, opened);
    results.push(witnesses.status);
    witnessing.replaceChildren(witnessTable(witnesses));
    results.push(await consistencyCheck(log, opened, witnesses.status === "verified", consistency));
  } catch (error) {
    if (!results.includes("pending")) results.push("failed");
    checkpointBox.append(h("p", { class: "error" }, error.message));
  }
  const overall = results.includes("failed") ? "failed" : results.includes("pending") ? "pending" : "verified";
  status.replaceWith(badge(overall, "log-status"));
  try {
    const growth = await getJson(`/logs/${log.name}/growth?points=64`);
    const points = (growth.points ?? []).slice(0, 256);
    plot.replaceChildren(growthPlot(points), h("p", { class: "muted" }, `${growth.treeSize} entries; ${points.length} sampled entries and when each was integrated (as the node recorded it, not signed).`));
  } catch (error) {
    plot.replaceChildren(h("p", { class: "error" }, error.message));
  }
}

/**
 * Proves the current checkpoint consistent with the one this browser last saw of the log, then
 * remembers the current one. A failed proof keeps the old checkpoint: it is the evidence.
 */
async function consistencyCheck(log, opened, witnessed, box) {
  const key = `seen:${log.origin}`;
  const seen = load(key);
  if (opened.status !== "verified" || !witnessed) {
    box.replaceChildren(h("p", { class: "muted" }, "The current checkpoint did not verify: nothing to compare."));
    return "failed";
  }
  const current = opened.checkpoint;
  const remember = () => save(key, { size: String(current.size), root: toBase64(current.root), vkey: log.verifier.vkey, at: Date.now() });
  if (!seen || seen.vkey !== log.verifier.vkey) {
    remember();
    box.replaceChildren(h("p", {}, badge("verified", "consistency-status"), ` First visit: this browser now remembers size ${current.size} and will prove later checkpoints consistent with it.`));
    return "verified";
  }
  let result;
  let reason = "";
  try {
    const old = decimal(seen.size);
    const root = fromBase64(seen.root);
    if (old > current.size) {
      result = false;
      reason = `the log has ${current.size} entries, fewer than the ${old} you saw`;
    } else {
      const proof = await getJson(`/logs/${log.name}/proof/consistency?old=${old}&new=${current.size}`);
      const hashes = (proof.hashes ?? []).slice(0, 128).map(fromBase64);
      result = await verifyConsistency(old, current.size, hashes, root, current.root);
      if (!result) reason = "the consistency proof does not verify: this is not an extension of what you saw";
    }
  } catch (error) {
    result = false;
    reason = error.message;
  }
  if (result) remember();
  box.replaceChildren(
    h(
      "p",
      {},
      badge(result ? "verified" : "failed", "consistency-status"),
      ` Last seen here ${time(seen.at)}: size ${seen.size}, root ${seen.root}. Now: size ${current.size}.`,
      reason ? h("span", { class: "why" }, ` ${reason}`) : "",
    ),
  );
  return result ? "verified" : "failed";
}

// ---- About ----

function aboutPage() {
  show(
    h("h1", {}, "What the explorer checks"),
    h(
      "section",
      {},
      h(
        "ul",
        { class: "checks" },
        h("li", {}, "Log keys: the trusted root's Ed25519 log keys, kept when the root names each by its C2SP key id (SHA-256 of origin, 0x0A, 0x01 and the key), with their validity windows. The root lists every log, artifacts and certificates, frozen ones too; a log it does not list fails, whatever key /logs names. Each key is pinned in this browser on first use: a changed key is a failure."),
        h("li", {}, "Checkpoints: the signed note's Ed25519 signature by the log key, with the origin as key name and the key id derived from it (WebCrypto Ed25519)."),
        h("li", {}, "Entries: the leaf hash (SHA-256 of 0x00 and the entry) and the RFC 6962 inclusion proof up to the checkpoint's root, recomputed here."),
        h("li", {}, "Witnesses: each cosignature (C2SP tlog-cosignature/v1: Ed25519 over “cosignature/v1”, the time and the checkpoint) against the node's tlog-policy, and the policy's quorum. The policy is pinned on first use too."),
        h("li", {}, "Integrated time: for artifacts, the log key's signed entry timestamp over the entry; for certificates, the leaf's own timestamp, which the inclusion proof covers. Either must be in the log key's validity window: after a rotation, the frozen log's key vouches for nothing newer."),
        h("li", {}, "Consistency: the current checkpoint against the one this browser last saw, by an RFC 6962 consistency proof."),
        h("li", {}, "Not checked: certificates' chains and validity (they are shown as decoded); the growth plot's times."),
      ),
    ),
  );
}

// ---- Routing ----

let generation = 0;

async function route() {
  const mine = ++generation;
  const hash = location.hash || "#/";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  try {
    if (parts[0] === "entry" && parts.length === 3) await entryPage(parts[1], parts[2]);
    else if (parts[0] === "log" && parts.length === 2) await logPage(parts[1]);
    else if (parts[0] === "about") aboutPage();
    else await searchPage(new URLSearchParams(query ?? ""));
  } catch (error) {
    show(h("h1", {}, "Error ", badge("failed", "page-status")), h("p", { class: "error" }, error.message));
  }
  // For tests and scripts: the page of this address is complete (unless another replaced it).
  if (mine === generation) document.body.dataset.ready = hash;
}

window.addEventListener("hashchange", route);
loadLogs()
  .then(route)
  .catch((error) => {
    show(h("h1", {}, "The explorer cannot start ", badge("failed", "page-status")), h("p", { class: "error" }, error.message));
    document.body.dataset.ready = "error";
  });
