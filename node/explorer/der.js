// A small DER (X.690) reader and an X.509 certificate decoder, for showing what a certificate
// says: subject alternative names, the Fulcio extensions (OIDC issuer and CI claims), validity,
// key and issuer. Display only: nothing here decides whether a certificate is trusted. Lengths
// are definite and bounded; every read is checked against its enclosing element.

import { fromBase64, toHex } from "./verify.js";

const ELEMENTS_MAX = 100000;

/** One DER element: tag class, constructed bit, tag number, and its contents' bounds. */
function readElement(bytes, at, end, budget) {
  if (--budget.left < 0) throw new Error("DER: too many elements");
  if (at + 2 > end) throw new Error("DER: truncated");
  const first = bytes[at++];
  const tagClass = first >> 6;
  const constructed = (first & 0x20) !== 0;
  let tag = first & 0x1f;
  if (tag === 0x1f) {
    tag = 0;
    for (let i = 0; ; i++) {
      if (at >= end || i > 3) throw new Error("DER: bad tag");
      const byte = bytes[at++];
      tag = tag * 128 + (byte & 0x7f);
      if ((byte & 0x80) === 0) break;
    }
  }
  if (at >= end) throw new Error("DER: truncated");
  let length = bytes[at++];
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4 || at + count > end) throw new Error("DER: bad length");
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + bytes[at++];
  }
  if (at + length > end) throw new Error("DER: element longer than its parent");
  return { tagClass, constructed, tag, start: at, end: at + length, bytes };
}

/** Parses DER bytes into a tree of `{tagClass, constructed, tag, contents, children}`. */
export function parseDer(bytes) {
  const budget = { left: ELEMENTS_MAX };
  const parse = (at, end, depth) => {
    if (depth > 32) throw new Error("DER: nested too deep");
    const element = readElement(bytes, at, end, budget);
    const node = {
      tagClass: element.tagClass,
      constructed: element.constructed,
      tag: element.tag,
      contents: bytes.subarray(element.start, element.end),
      raw: bytes.subarray(at, element.end),
      children: [],
    };
    if (element.constructed) {
      let inner = element.start;
      while (inner < element.end) {
        const child = parse(inner, element.end, depth + 1);
        node.children.push(child);
        inner = child.raw.byteOffset - bytes.byteOffset + child.raw.length;
      }
    }
    return node;
  };
  const root = parse(0, bytes.length, 0);
  if (root.raw.length !== bytes.length) throw new Error("DER: trailing bytes");
  return root;
}

const UNIVERSAL = 0;
const CONTEXT = 2;

export function oidText(contents) {
  const arcs = [];
  let value = 0n;
  for (const byte of contents) {
    value = value * 128n + BigInt(byte & 0x7f);
    if ((byte & 0x80) === 0) {
      arcs.push(value);
      value = 0n;
    }
  }
  if (arcs.length === 0) return "";
  const first = arcs[0] < 80n ? arcs[0] / 40n : 2n;
  return [first, arcs[0] - first * 40n, ...arcs.slice(1)].join(".");
}

function text(node) {
  return new TextDecoder("utf-8", { fatal: false }).decode(node.contents);
}

function time(node) {
  const value = text(node);
  // UTCTime YYMMDDHHMMSSZ, GeneralizedTime YYYYMMDDHHMMSSZ.
  const match =
    node.tag === 23
      ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(value)
      : /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)Z$/.exec(value);
  if (!match) return null;
  let year = Number(match[1]);
  if (node.tag === 23) year += year < 50 ? 2000 : 1900;
  return new Date(Date.UTC(year, match[2] - 1, match[3], match[4], match[5], match[6]));
}

const NAME_ATTRIBUTES = {
  "2.5.4.3": "CN",
  "2.5.4.6": "C",
  "2.5.4.7": "L",
  "2.5.4.8": "ST",
  "2.5.4.10": "O",
  "2.5.4.11": "OU",
  "1.2.840.113549.1.9.1": "emailAddress",
};

function name(node) {
  const parts = [];
  for (const set of node.children) {
    for (const attribute of set.children) {
      const [type, value] = attribute.children;
      if (!type || !value) continue;
      const oid = oidText(type.contents);
      parts.push(`${NAME_ATTRIBUTES[oid] ?? oid}=${text(value)}`);
    }
  }
  return parts.join(", ");
}

/** The Sigstore extension arc 1.3.6.1.4.1.57264.1.N (Fulcio's docs/oid-info.md). */
const FULCIO = "1.3.6.1.4.1.57264.1.";
const FULCIO_NAMES = {
  1: "Issuer (deprecated)",
  2: "GitHub Workflow Trigger (deprecated)",
  3: "GitHub Workflow SHA (deprecated)",
  4: "GitHub Workflow Name (deprecated)",
  5: "GitHub Workflow Repository (deprecated)",
  6: "GitHub Workflow Ref (deprecated)",
  7: "OtherName SAN",
  8: "Issuer (V2)",
  9: "Build Signer URI",
  10: "Build Signer Digest",
  11: "Runner Environment",
  12: "Source Repository URI",
  13: "Source Repository Digest",
  14: "Source Repository Ref",
  15: "Source Repository Identifier",
  16: "Source Repository Owner URI",
  17: "Source Repository Owner Identifier",
  18: "Build Config URI",
  19: "Build Config Digest",
  20: "Build Trigger",
  21: "Run Invocation URI",
  22: "Source Repository Visibility At Signing",
  23: "Deployment Environment",
};
const EXTENSION_NAMES = {
  "2.5.29.14": "Subject Key Identifier",
  "2.5.29.15": "Key Usage",
  "2.5.29.17": "Subject Alternative Name",
  "2.5.29.19": "Basic Constraints",
  "2.5.29.35": "Authority Key Identifier",
  "2.5.29.37": "Extended Key Usage",
  "1.3.6.1.4.1.11129.2.4.2": "Embedded SCTs",
  "1.3.6.1.4.1.11129.2.4.3": "Precertificate poison",
};
const KEY_PURPOSES = { "1.3.6.1.5.5.7.3.3": "code signing", "1.3.6.1.5.5.7.3.8": "time stamping" };
const KEY_ALGORITHMS = {
  "1.2.840.10045.2.1": "ECDSA",
  "1.3.101.112": "Ed25519",
  "1.2.840.113549.1.1.1": "RSA",
};
const CURVES = { "1.2.840.10045.3.1.7": "P-256", "1.3.132.0.34": "P-384", "1.3.132.0.35": "P-521" };

function subjectAlternativeNames(extension) {
  const names = [];
  for (const general of parseDer(extension).children) {
    if (general.tagClass !== CONTEXT) continue;
    const kinds = { 1: "email", 2: "dns", 6: "uri" };
    if (kinds[general.tag]) names.push({ kind: kinds[general.tag], value: text(general) });
    else if (general.tag === 0) names.push({ kind: "other", value: toHex(general.contents) });
  }
  return names;
}

function extensionValue(oid, value) {
  if (oid === "2.5.29.17") {
    return subjectAlternativeNames(value)
      .map((san) => `${san.kind}:${san.value}`)
      .join(", ");
  }
  if (oid === "2.5.29.37") {
    return parseDer(value)
      .children.map((purpose) => {
        const id = oidText(purpose.contents);
        return KEY_PURPOSES[id] ?? id;
      })
      .join(", ");
  }
  if (oid === "2.5.29.15") {
    // A BIT STRING: its first byte counts the unused bits, then bit 0 is the top bit.
    const bits = parseDer(value).contents;
    const names = ["digital signature", "content commitment", "key encipherment", "data encipherment", "key agreement", "certificate signing", "CRL signing", "encipher only", "decipher only"];
    return names.filter((_, i) => bits.length > 1 + (i >> 3) && (bits[1 + (i >> 3)] & (0x80 >> (i & 7))) !== 0).join(", ");
  }
  if (oid === "2.5.29.14") return toHex(parseDer(value).contents);
  if (oid === "2.5.29.19") {
    const isCa = parseDer(value).children.some((c) => c.tag === 1 && c.contents[0] !== 0);
    return isCa ? "CA" : "not a CA";
  }
  if (oid.startsWith(FULCIO)) {
    const arc = Number(oid.slice(FULCIO.length));
    // .1 to .6 hold raw bytes; .8 and up a DER UTF8String.
    if (arc >= 8) {
      try {
        const inner = parseDer(value);
        if (inner.tagClass === UNIVERSAL && inner.tag === 12) return text(inner);
      } catch {
        // Shown as raw bytes below.
      }
    }
    return new TextDecoder("utf-8", { fatal: false }).decode(value);
  }
  return toHex(value.subarray(0, 64)) + (value.length > 64 ? "…" : "");
}

/**
 * Decodes a TBSCertificate (DER tree node): serial, issuer, validity, subject, key, and every
 * extension with its name and a readable value; the SANs and the OIDC issuer separately.
 */
export function decodeTbs(tbs) {
  const fields = [...tbs.children];
  if (fields[0]?.tagClass === CONTEXT && fields[0].tag === 0) fields.shift();
  const [serial, , issuer, validity, subject, spki] = fields;
  if (!spki) throw new Error("not a TBSCertificate");
  const [algorithm] = spki.children;
  const keyOid = oidText(algorithm.children[0].contents);
  const curve = algorithm.children[1]?.tag === 6 ? CURVES[oidText(algorithm.children[1].contents)] : "";
  const extensions = [];
  let sans = [];
  let oidcIssuer = null;
  for (const field of fields.slice(6)) {
    if (field.tagClass !== CONTEXT || field.tag !== 3) continue;
    for (const extension of field.children[0]?.children ?? []) {
      const oid = oidText(extension.children[0].contents);
      const critical = extension.children.length === 3 && extension.children[1].contents[0] !== 0;
      const value = extension.children[extension.children.length - 1].contents;
      let shown;
      try {
        shown = extensionValue(oid, value);
      } catch (error) {
        shown = `(unreadable: ${error.message})`;
      }
      const arc = oid.startsWith(FULCIO) ? Number(oid.slice(FULCIO.length)) : null;
      const label = arc !== null ? `Fulcio ${FULCIO_NAMES[arc] ?? `.${arc}`}` : EXTENSION_NAMES[oid] ?? oid;
      extensions.push({ oid, name: label, critical, value: shown, fulcio: arc !== null });
      if (oid === "2.5.29.17") sans = subjectAlternativeNames(value);
      if (arc === 8 || (arc === 1 && oidcIssuer === null)) oidcIssuer = shown;
    }
  }
  const [notBefore, notAfter] = validity.children.map(time);
  return {
    serial: toHex(serial.contents),
    issuer: name(issuer),
    subject: name(subject),
    notBefore,
    notAfter,
    key: `${KEY_ALGORITHMS[keyOid] ?? keyOid}${curve ? ` ${curve}` : ""}`,
    sans,
    oidcIssuer,
    extensions,
  };
}

/** Decodes a DER certificate. */
export function decodeCertificate(der) {
  const certificate = parseDer(der);
  const tbs = certificate.children[0];
  if (!tbs || certificate.children.length !== 3) throw new Error("not a certificate");
  return { ...decodeTbs(tbs), der };
}

/** The DER of the first PEM block of `pem`, and its label. */
export function pemToDer(pem) {
  const match = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/.exec(pem);
  if (!match) throw new Error("no PEM block");
  return { label: match[1], der: fromBase64(match[2].replace(/\s+/g, "")) };
}

/**
 * What a DER blob is: a certificate (`{kind: "certificate", ...decoded}`) or a public key
 * (`{kind: "key", algorithm}`).
 */
export function describeDer(der) {
  const node = parseDer(der);
  const first = node.children[0];
  if (first?.tag === 16 && first.constructed && node.children.length === 3) {
    return { kind: "certificate", ...decodeCertificate(der) };
  }
  if (first?.tag === 16 && node.children.length === 2) {
    const algorithm = oidText(first.children[0].contents);
    return { kind: "key", algorithm: KEY_ALGORITHMS[algorithm] ?? algorithm };
  }
  throw new Error("neither a certificate nor a public key");
}

/**
 * A certificate log leaf (RFC 6962 MerkleTreeLeaf, v1 timestamped_entry): `{type: "x509" |
 * "precert", timestampMs, certificate (DER) | tbs (DER)}`.
 */
export function parseCtLeaf(leaf) {
  const view = new DataView(leaf.buffer, leaf.byteOffset, leaf.byteLength);
  if (leaf.length < 15 || leaf[0] !== 0 || leaf[1] !== 0) throw new Error("not a v1 timestamped_entry");
  const timestampMs = view.getBigUint64(2);
  const type = view.getUint16(10);
  let at = 12;
  const u24 = () => {
    if (at + 3 > leaf.length) throw new Error("truncated leaf");
    const length = (leaf[at] << 16) | (leaf[at + 1] << 8) | leaf[at + 2];
    at += 3;
    if (at + length > leaf.length) throw new Error("truncated leaf");
    const bytes = leaf.subarray(at, at + length);
    at += length;
    return bytes;
  };
  let entry;
  if (type === 0) {
    entry = { type: "x509", timestampMs, certificate: u24() };
  } else if (type === 1) {
    if (at + 32 > leaf.length) throw new Error("truncated leaf");
    const issuerKeyHash = leaf.subarray(at, at + 32);
    at += 32;
    entry = { type: "precert", timestampMs, issuerKeyHash, tbs: u24() };
  } else {
    throw new Error(`unknown entry type ${type}`);
  }
  if (at + 2 > leaf.length) throw new Error("truncated leaf");
  const extensions = view.getUint16(at);
  if (at + 2 + extensions !== leaf.length) throw new Error("trailing bytes in leaf");
  return entry;
}
