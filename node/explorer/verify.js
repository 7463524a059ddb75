// What the explorer verifies, with WebCrypto only (SHA-256 and Ed25519): RFC 6962 / RFC 9162
// Merkle hashing and proofs, C2SP signed notes and checkpoints, C2SP tlog-cosignature/v1
// cosignatures, and Rekor v1 signed entry timestamps. Pure functions over bytes and strings;
// nothing here fetches. Every check returns false or throws on anything malformed: a caller
// shows "verified" only on an explicit true.

const encoder = new TextEncoder();

/** UTF-8 bytes of a string. */
export function utf8(text) {
  return encoder.encode(text);
}

/** Strict standard base64 (with padding) to bytes; throws on anything else. */
export function fromBase64(text) {
  if (typeof text !== "string" || text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw new Error("not base64");
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

export function toBase64(bytes) {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export function toHex(bytes) {
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  if (typeof text !== "string" || text.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(text)) {
    throw new Error("not hex");
  }
  const bytes = new Uint8Array(text.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export function equalBytes(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

// ---- RFC 6962 Merkle trees (RFC 9162 §2.1) ----

/** The leaf hash: SHA-256(0x00 ‖ leaf). */
export async function leafHash(leaf) {
  return sha256(concat(new Uint8Array([0]), leaf));
}

/** An interior node's hash: SHA-256(0x01 ‖ left ‖ right). */
export async function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

/** A decimal tree size or index as a BigInt; throws on anything but plain digits. */
export function decimal(value) {
  const text = String(value);
  if (!/^(0|[1-9][0-9]{0,19})$/.test(text)) throw new Error(`not a decimal number: ${text}`);
  const number = BigInt(text);
  if (number >= 1n << 64n) throw new Error(`out of range: ${text}`);
  return number;
}

/**
 * RFC 9162 §2.1.3.2: whether `proof` proves the leaf with hash `leaf` at `index` in the tree of
 * `size` leaves whose root is `root`.
 */
export async function verifyInclusion(index, size, leaf, proof, root) {
  let fn = decimal(index);
  let sn = decimal(size) - 1n;
  if (fn > sn || leaf.length !== 32 || root.length !== 32) return false;
  let r = leaf;
  for (const p of proof) {
    if (p.length !== 32 || sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equalBytes(r, root);
}

/**
 * RFC 9162 §2.1.4.2: whether `proof` shows the tree of `size2` leaves with root `root2`
 * extends the tree of `size1` leaves with root `root1`. From size 0 every tree is consistent
 * and the proof is empty (C2SP tlog-witness).
 */
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  const old = decimal(size1);
  const now = decimal(size2);
  if (old > now || proof.some((hash) => hash.length !== 32)) return false;
  if (old === 0n) return proof.length === 0;
  if (old === now) return proof.length === 0 && equalBytes(root1, root2);
  if (proof.length === 0) return false;
  let path = proof;
  if ((old & (old - 1n)) === 0n) path = [root1, ...proof];
  let fn = old - 1n;
  let sn = now - 1n;
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return sn === 0n && equalBytes(fr, root1) && equalBytes(sr, root2);
}

// ---- C2SP signed notes ----

/** Note signature types (C2SP signed-note): Ed25519, and the timestamped cosignature/v1. */
export const TYPE_ED25519 = 0x01;
export const TYPE_COSIGNATURE_V1 = 0x04;

const EM_DASH = "\u2014";

/** A key name: non-empty, no Unicode spaces or `+` (C2SP signed-note). */
function validName(name) {
  return typeof name === "string" && name.length > 0 && !/[\s+]/u.test(name);
}

/**
 * A key id: SHA-256(name ‖ 0x0A ‖ type ‖ public key)[:4] (C2SP signed-note, and
 * tlog-cosignature for type 0x04). The whole hash is Rekor v2's `logId.keyId` for a log.
 */
export async function keyHash(name, type, publicKey) {
  return sha256(concat(utf8(name), new Uint8Array([0x0a, type]), publicKey));
}

/**
 * Parses a verifier key, `<name>+<8 hex key id>+<base64(type ‖ key)>`, and checks that its
 * key id is the one its name and key give.
 */
export async function parseVerifierKey(vkey) {
  // Names hold no "+", but base64 may: split at the first two only.
  const match = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/s.exec(String(vkey));
  if (!match || !validName(match[1])) throw new Error("a verifier key is <name>+<key id>+<key>");
  const [, name, keyIdHex, keyText] = match;
  const key = fromBase64(keyText);
  const type = key[0];
  const publicKey = key.slice(1);
  if ((type !== TYPE_ED25519 && type !== TYPE_COSIGNATURE_V1) || publicKey.length !== 32) {
    throw new Error(`unsupported key type 0x${(type ?? 0).toString(16)}`);
  }
  const keyId = (await keyHash(name, type, publicKey)).slice(0, 4);
  if (toHex(keyId) !== keyIdHex) throw new Error(`key id ${keyIdHex} does not match the key`);
  return { name, type, publicKey, keyId, vkey: String(vkey) };
}

/** A verifier from a name, a type and a 32-byte Ed25519 public key. */
export async function makeVerifier(name, type, publicKey) {
  if (!validName(name)) throw new Error(`bad key name ${name}`);
  const keyId = (await keyHash(name, type, publicKey)).slice(0, 4);
  const vkey = `${name}+${toHex(keyId)}+${toBase64(concat(new Uint8Array([type]), publicKey))}`;
  return { name, type, publicKey, keyId, vkey };
}

/**
 * Splits a signed note into its text (ending in a newline) and signature lines, each
 * `{name, keyId, signature}`. Throws on a malformed note.
 */
export function parseNote(note) {
  if (typeof note !== "string" || note.length > 1 << 20) throw new Error("not a note");
  const split = note.lastIndexOf("\n\n");
  if (split < 0) throw new Error("a note has its text, a blank line and signatures");
  const text = note.slice(0, split + 1);
  const block = note.slice(split + 2);
  if (!block.endsWith("\n")) throw new Error("the signature block must end in a newline");
  const signatures = block
    .slice(0, -1)
    .split("\n")
    .map((line) => {
      const match = /^\u2014 (\S+) ([A-Za-z0-9+/=]+)$/u.exec(line);
      if (!match || !validName(match[1])) throw new Error(`malformed signature line: ${line}`);
      const bytes = fromBase64(match[2]);
      if (bytes.length < 5) throw new Error("a signature line is too short");
      return { name: match[1], keyId: bytes.slice(0, 4), signature: bytes.slice(4), line };
    });
  if (signatures.length === 0) throw new Error("a note needs a signature");
  return { text, signatures };
}

async function ed25519Verify(publicKey, signature, message) {
  if (signature.length !== 64) return false;
  const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, [
    "verify",
  ]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, signature, message);
}

/**
 * Whether `note` (parsed) carries a valid Ed25519 signature by `verifier` (type 0x01): a line
 * with its name and key id whose signature verifies over the note text. A line with the name
 * and key id that does not verify fails the note.
 */
export async function verifyNoteSignature(note, verifier) {
  const lines = note.signatures.filter(
    (line) => line.name === verifier.name && equalBytes(line.keyId, verifier.keyId),
  );
  if (lines.length === 0) return false;
  for (const line of lines) {
    if (!(await ed25519Verify(verifier.publicKey, line.signature, utf8(note.text)))) return false;
  }
  return true;
}

/**
 * The message a tlog-cosignature/v1 Ed25519 cosignature signs: `cosignature/v1\n`, `time
 * <seconds>\n`, then the whole checkpoint text.
 */
export function cosignedMessage(text, timestamp) {
  return utf8(`cosignature/v1\ntime ${timestamp}\n${text}`);
}

/**
 * Checks a cosignature line against a witness's cosignature key (type 0x04): the signature
 * bytes are an 8-byte big-endian timestamp and a 64-byte Ed25519 signature. Returns
 * `{valid, timestamp}`.
 */
export async function verifyCosignature(note, line, verifier) {
  if (
    verifier.type !== TYPE_COSIGNATURE_V1 ||
    line.name !== verifier.name ||
    !equalBytes(line.keyId, verifier.keyId) ||
    line.signature.length !== 72
  ) {
    return { valid: false, timestamp: null };
  }
  const view = new DataView(line.signature.buffer, line.signature.byteOffset, 8);
  const timestamp = view.getBigUint64(0);
  if (timestamp >= 1n << 63n) return { valid: false, timestamp };
  const valid = await ed25519Verify(
    verifier.publicKey,
    line.signature.slice(8),
    cosignedMessage(note.text, timestamp),
  );
  return { valid, timestamp };
}

/**
 * Parses a checkpoint's text (C2SP tlog-checkpoint): origin, decimal size, base64 root hash,
 * then extension lines.
 */
export function parseCheckpoint(text) {
  const lines = text.split("\n");
  if (lines.length < 4 || lines[lines.length - 1] !== "") throw new Error("not a checkpoint");
  const [origin, sizeText, rootText] = lines;
  if (!origin) throw new Error("a checkpoint starts with its origin");
  const size = decimal(sizeText);
  const root = fromBase64(rootText);
  if (root.length !== 32) throw new Error("the root hash is not 32 bytes");
  return { origin, size, root, extensions: lines.slice(3, -1) };
}

/**
 * Opens a signed checkpoint with a log's verifier: parses it, checks that the origin is the
 * key's name and the signature verifies. Returns `{note, checkpoint, verified, reason}`.
 */
export async function openCheckpoint(noteText, verifier) {
  let note;
  let checkpoint;
  try {
    note = parseNote(noteText);
    checkpoint = parseCheckpoint(note.text);
  } catch (error) {
    return { verified: false, reason: `malformed: ${error.message}` };
  }
  if (checkpoint.origin !== verifier.name) {
    return { note, checkpoint, verified: false, reason: `origin ${checkpoint.origin} is not the log's` };
  }
  const verified = await verifyNoteSignature(note, verifier);
  return {
    note,
    checkpoint,
    verified,
    reason: verified ? "" : "no valid signature by the log's key",
  };
}

// ---- Keys from the trusted root ----

/** The DER header of an Ed25519 SubjectPublicKeyInfo (RFC 8410). */
const ED25519_SPKI_HEADER = fromHex("302a300506032b6570032100");

/** The 32-byte key of an Ed25519 SubjectPublicKeyInfo, or null. */
export function ed25519FromSpki(spki) {
  if (spki.length !== 44 || !equalBytes(spki.slice(0, 12), ED25519_SPKI_HEADER)) return null;
  return spki.slice(12);
}

/**
 * A `validFor` (protobuf-specs TimeRange: RFC 3339 `start`, optional `end`) as `{start, end}`
 * in milliseconds since the epoch (`end` null: open). Throws on a missing or unreadable start.
 */
export function parseValidFor(validFor) {
  const time = (text) => {
    const ms = typeof text === "string" && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(text) ? Date.parse(text) : NaN;
    if (!Number.isFinite(ms)) throw new Error(`validFor has no RFC 3339 UTC time: ${String(text).slice(0, 40)}`);
    return ms;
  };
  const start = time(validFor?.start);
  const end = validFor?.end === undefined || validFor?.end === null ? null : time(validFor.end);
  return { start, end };
}

/** Whether `ms` (a time in milliseconds) is in `window` (`{start, end}`, end null: open). */
export function inWindow(window, ms) {
  return Number.isFinite(ms) && ms >= window.start && (window.end === null || ms <= window.end);
}

/**
 * The C2SP log keys a trusted root lists: for each Ed25519 tlog, the checkpoint verifier named
 * after its `baseUrl`'s host (the origin), kept only when the trusted root names it by that
 * key's C2SP key id (`logId.keyId` = SHA-256(origin ‖ 0x0A ‖ 0x01 ‖ key)), which shows the
 * name and key belong together; each with its key's `window` (`validFor`, see
 * `parseValidFor`), from the entry that names it by that id. Returns `{verifiers, notes}`:
 * why any tlog was left out.
 */
export async function trustedLogKeys(trustedRoot) {
  const verifiers = [];
  const notes = [];
  const tlogs = Array.isArray(trustedRoot?.tlogs) ? trustedRoot.tlogs.slice(0, 64) : [];
  const byKey = new Map();
  for (const tlog of tlogs) {
    try {
      const key = ed25519FromSpki(fromBase64(tlog.publicKey.rawBytes));
      if (!key) continue;
      const origin = new URL(tlog.baseUrl).hostname;
      const full = await keyHash(origin, TYPE_ED25519, key);
      const logId = fromBase64(tlog.logId.keyId);
      const entry = byKey.get(toHex(key)) ?? { origin, key, window: null };
      if (equalBytes(full, logId)) entry.window = parseValidFor(tlog.publicKey.validFor);
      byKey.set(toHex(key), entry);
    } catch (error) {
      notes.push(`a tlog entry was skipped: ${error.message}`);
    }
  }
  for (const { origin, key, window } of byKey.values()) {
    if (window) verifiers.push({ ...(await makeVerifier(origin, TYPE_ED25519, key)), window });
    else notes.push(`${origin}: no logId.keyId is its C2SP key id`);
  }
  return { verifiers, notes };
}

// ---- Rekor v1 signed entry timestamps ----

/**
 * Whether `set` is the log key's Ed25519 signature over the RFC 8785 JSON of `{body,
 * integratedTime, logID, logIndex}` (base64, integer, hex, integer: none needs escaping).
 */
export async function verifySignedEntryTimestamp(publicKey, fields, set) {
  const { body, integratedTime, logID, logIndex } = fields;
  if (
    !/^[A-Za-z0-9+/=]*$/.test(body) ||
    !/^[0-9a-f]+$/.test(logID) ||
    !Number.isSafeInteger(integratedTime) ||
    !Number.isSafeInteger(logIndex)
  ) {
    return false;
  }
  const payload = `{"body":"${body}","integratedTime":${integratedTime},"logID":"${logID}","logIndex":${logIndex}}`;
  return ed25519Verify(publicKey, set, utf8(payload));
}
