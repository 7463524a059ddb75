// C2SP tlog-policy: which witnesses cosign a log and how many must (`log`, `witness`, `group`,
// `quorum` lines), and the check of a checkpoint's cosignatures against it, as
// tlog/src/policy.rs does: names are defined before use, thresholds are all, any or 1..n, one
// quorum line. Only cosignatures that verify count.

import {
  TYPE_COSIGNATURE_V1,
  TYPE_ED25519,
  parseVerifierKey,
  verifyCosignature,
} from "./verify.js";

const POLICY_BYTES_MAX = 256 * 1024;
const ITEMS_MAX = 256;

/** Parses a policy; throws an Error naming the line at fault. */
export async function parsePolicy(text) {
  if (typeof text !== "string" || text.length > POLICY_BYTES_MAX) throw new Error("policy too large");
  const logs = [];
  const witnesses = new Map();
  const groups = new Map();
  let quorum;
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const fail = (why) => {
      throw new Error(`policy line ${i + 1}: ${why}`);
    };
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const items = line.split(/[ \t]+/);
    const defined = (name) => witnesses.has(name) || groups.has(name);
    switch (items[0]) {
      case "log": {
        if (items.length < 2 || items.length > 3) fail("log <vkey> [<url>]");
        const key = await parseVerifierKey(items[1]).catch((error) => fail(error.message));
        if (key.type !== TYPE_ED25519) fail("a log key is an Ed25519 (0x01) key here");
        logs.push(key);
        break;
      }
      case "witness": {
        if (items.length < 3 || items.length > 4) fail("witness <name> <vkey> [<url>]");
        const name = items[1];
        if (name === "none") fail('the name "none" is reserved');
        if (defined(name)) fail(`name ${name} already defined`);
        const key = await parseVerifierKey(items[2]).catch((error) => fail(error.message));
        if (key.type !== TYPE_COSIGNATURE_V1) fail("a witness key is a cosignature (0x04) key");
        witnesses.set(name, key);
        break;
      }
      case "group": {
        if (items.length < 4) fail("group <name> <all|any|k> <member>...");
        const [, name, threshold, ...members] = items;
        if (name === "none") fail('the name "none" is reserved');
        if (defined(name)) fail(`name ${name} already defined`);
        if (new Set(members).size !== members.length) fail("a member is listed twice");
        for (const member of members) if (!defined(member)) fail(`${member} is not defined above`);
        let k;
        if (threshold === "all") k = members.length;
        else if (threshold === "any") k = 1;
        else if (/^[1-9][0-9]{0,5}$/.test(threshold)) k = Number(threshold);
        else fail("the threshold is all, any or a number");
        if (k < 1 || k > members.length) fail(`threshold ${k} is not 1 to ${members.length}`);
        groups.set(name, { k, members });
        break;
      }
      case "quorum": {
        if (items.length !== 2) fail("quorum <name|none>");
        if (quorum !== undefined) fail("a second quorum");
        if (items[1] !== "none" && !defined(items[1])) fail(`${items[1]} is not defined above`);
        quorum = items[1];
        break;
      }
      default:
        fail(`unknown keyword ${items[0]}`);
    }
    if (logs.length > ITEMS_MAX || witnesses.size > ITEMS_MAX || groups.size > ITEMS_MAX) {
      fail("too many lines");
    }
  }
  if (quorum === undefined) throw new Error("the policy has no quorum line");
  return { logs, witnesses, groups, quorum };
}

/** Whether the witnesses named in `cosigned` (a Set) satisfy the policy's quorum. */
export function quorumMet(policy, cosigned) {
  if (policy.quorum === "none") return true;
  const satisfied = new Set([...cosigned].filter((name) => policy.witnesses.has(name)));
  // Groups only name earlier definitions: one pass in definition order settles them all.
  for (const [name, group] of policy.groups) {
    const count = group.members.filter((member) => satisfied.has(member)).length;
    if (count >= group.k) satisfied.add(name);
  }
  return satisfied.has(policy.quorum);
}

/**
 * Checks a parsed note's cosignatures against the policy: per witness, whether a line with its
 * key name and key id verifies (and its timestamp). Returns `{witnesses: [{name, vkey, status,
 * timestamp}], met}`; a line that names a witness's key but does not verify is "failed".
 */
export async function checkCosignatures(policy, note) {
  const results = [];
  const cosigned = new Set();
  for (const [name, verifier] of policy.witnesses) {
    const lines = note.signatures.filter(
      (line) =>
        line.name === verifier.name &&
        line.keyId.length === 4 &&
        line.keyId.every((byte, i) => byte === verifier.keyId[i]),
    );
    let status = "absent";
    let timestamp = null;
    for (const line of lines) {
      const check = await verifyCosignature(note, line, verifier);
      timestamp = check.timestamp;
      status = check.valid ? "verified" : "failed";
      if (!check.valid) break;
    }
    if (status === "verified") cosigned.add(name);
    results.push({ name, vkey: verifier.vkey, status, timestamp });
  }
  const failed = results.some((witness) => witness.status === "failed");
  return { witnesses: results, met: !failed && quorumMet(policy, cosigned) };
}
