// The explorer's verification code (node/explorer/*.js) under Node's test runner, with Node's
// WebCrypto: Merkle proofs against a model written from RFC 6962 §2.1 (every index and size up
// to 40, every tampered hash refused), signed notes, cosignatures and policies made with
// Node's Ed25519, and DER decoding. The browser test (explorer.test.mjs) runs the same files
// in Chromium against a real cluster.
import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync, sign as nodeSign } from "node:crypto";

import * as v from "../../explorer/verify.js";
import { checkCosignatures, parsePolicy, quorumMet } from "../../explorer/policy.js";
import { parseCtLeaf, pemToDer, oidText } from "../../explorer/der.js";

// ---- RFC 6962 §2.1, written from the text ----
const largestPowerBelow = (n) => {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
};
async function mth(leaves) {
  if (leaves.length === 0) return v.sha256(new Uint8Array());
  if (leaves.length === 1) return v.leafHash(leaves[0]);
  const k = largestPowerBelow(leaves.length);
  return v.nodeHash(await mth(leaves.slice(0, k)), await mth(leaves.slice(k)));
}
async function path(m, leaves) {
  if (leaves.length === 1) return [];
  const k = largestPowerBelow(leaves.length);
  if (m < k) return [...(await path(m, leaves.slice(0, k))), await mth(leaves.slice(k))];
  return [...(await path(m - k, leaves.slice(k))), await mth(leaves.slice(0, k))];
}
async function subproof(m, leaves, complete) {
  const n = leaves.length;
  if (m === n) return complete ? [] : [await mth(leaves)];
  const k = largestPowerBelow(n);
  if (m <= k) return [...(await subproof(m, leaves.slice(0, k), complete)), await mth(leaves.slice(k))];
  return [...(await subproof(m - k, leaves.slice(k), false)), await mth(leaves.slice(0, k))];
}
const flip = (hash) => {
  const copy = hash.slice();
  copy[0] ^= 1;
  return copy;
};

test("inclusion proofs: every index of every size to 24, and tampering fails", async () => {
  const leaves = Array.from({ length: 24 }, (_, i) => v.utf8(`leaf ${i}`));
  for (let size = 1; size <= 24; size++) {
    const tree = leaves.slice(0, size);
    const root = await mth(tree);
    for (let index = 0; index < size; index++) {
      const proof = await path(index, tree);
      const leaf = await v.leafHash(tree[index]);
      assert.ok(await v.verifyInclusion(index, size, leaf, proof, root), `${index}/${size}`);
      assert.ok(!(await v.verifyInclusion(index, size, leaf, proof, flip(root))));
      assert.ok(!(await v.verifyInclusion(index, size, flip(leaf), proof, root)));
      for (let i = 0; i < proof.length; i++) {
        const bad = proof.map((hash, j) => (i === j ? flip(hash) : hash));
        assert.ok(!(await v.verifyInclusion(index, size, leaf, bad, root)));
      }
      assert.ok(!(await v.verifyInclusion(index, size, leaf, [...proof, root], root)));
    }
    assert.ok(!(await v.verifyInclusion(size, size, await v.leafHash(v.utf8("x")), [], root)));
  }
});

test("consistency proofs: every pair of sizes to 20, and tampering fails", async () => {
  const leaves = Array.from({ length: 20 }, (_, i) => v.utf8(`leaf ${i}`));
  for (let n = 1; n <= 20; n++) {
    const rootN = await mth(leaves.slice(0, n));
    for (let m = 1; m <= n; m++) {
      const rootM = await mth(leaves.slice(0, m));
      const proof = m === n ? [] : await subproof(m, leaves.slice(0, n), true);
      assert.ok(await v.verifyConsistency(m, n, proof, rootM, rootN), `${m}..${n}`);
      if (m < n) {
        assert.ok(!(await v.verifyConsistency(m, n, proof, flip(rootM), rootN)));
        assert.ok(!(await v.verifyConsistency(m, n, proof, rootM, flip(rootN))));
        for (let i = 0; i < proof.length; i++) {
          const bad = proof.map((hash, j) => (i === j ? flip(hash) : hash));
          assert.ok(!(await v.verifyConsistency(m, n, bad, rootM, rootN)), `${m}..${n} hash ${i}`);
        }
        assert.ok(!(await v.verifyConsistency(m, n, [], rootM, rootN)));
      }
    }
    assert.ok(await v.verifyConsistency(0, n, [], new Uint8Array(32), rootN));
    assert.ok(!(await v.verifyConsistency(n + 1, n, [], rootN, rootN)));
  }
});

test("RFC 6962 test vector: the empty tree and one leaf", async () => {
  assert.equal(v.toHex(await mth([])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  assert.equal(v.toHex(await v.leafHash(new Uint8Array())), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
});

function ed25519() {
  const { publicKey, privateKey } = generateKeyPairSync("ed25519");
  const raw = publicKey.export({ format: "der", type: "spki" }).subarray(12);
  return { raw: new Uint8Array(raw), sign: (bytes) => new Uint8Array(nodeSign(null, bytes, privateKey)) };
}

async function signedCheckpoint(origin, log, size, root, cosigners = []) {
  const text = `${origin}\n${size}\n${v.toBase64(root)}\n`;
  const verifier = await v.makeVerifier(origin, v.TYPE_ED25519, log.raw);
  let note = `${text}\n\u2014 ${origin} ${v.toBase64(v.concat(verifier.keyId, log.sign(v.utf8(text))))}\n`;
  for (const { name, key, time } of cosigners) {
    const cosigner = await v.makeVerifier(name, v.TYPE_COSIGNATURE_V1, key.raw);
    const stamp = new Uint8Array(8);
    new DataView(stamp.buffer).setBigUint64(0, BigInt(time));
    const signature = key.sign(v.cosignedMessage(text, time));
    note += `\u2014 ${name} ${v.toBase64(v.concat(cosigner.keyId, stamp, signature))}\n`;
  }
  return { note, verifier };
}

test("checkpoints: the log's signature verifies; another root, origin or key does not", async () => {
  const log = ed25519();
  const root = await mth([v.utf8("a")]);
  const { note, verifier } = await signedCheckpoint("log.example", log, 1, root);
  const opened = await v.openCheckpoint(note, verifier);
  assert.ok(opened.verified, opened.reason);
  assert.equal(opened.checkpoint.size, 1n);
  const tampered = note.replace(v.toBase64(root), v.toBase64(flip(root)));
  assert.ok(!(await v.openCheckpoint(tampered, verifier)).verified);
  const other = await v.makeVerifier("log.example", v.TYPE_ED25519, ed25519().raw);
  assert.ok(!(await v.openCheckpoint(note, other)).verified);
  const renamed = await v.makeVerifier("other.example", v.TYPE_ED25519, log.raw);
  assert.ok(!(await v.openCheckpoint(note, renamed)).verified);
  // A vkey round-trips, and one whose key id lies is refused.
  assert.equal((await v.parseVerifierKey(verifier.vkey)).vkey, verifier.vkey);
  const [, name, , key] = /^([^+]+)\+([0-9a-f]{8})\+(.+)$/.exec(verifier.vkey);
  await assert.rejects(v.parseVerifierKey(`${name}+00000000+${key}`));
});

test("log keys from a trusted root: by C2SP key id, each with its validity window", async () => {
  const tlog = async (origin, key, logId, validFor) => ({
    baseUrl: `http://${origin}:7001`,
    hashAlgorithm: "SHA2_256",
    publicKey: { rawBytes: v.toBase64(v.concat(v.fromHex("302a300506032b6570032100"), key.raw)), keyDetails: "PKIX_ED25519", validFor },
    logId: { keyId: v.toBase64(logId ?? (await v.keyHash(origin, v.TYPE_ED25519, key.raw))) },
  });
  const [frozen, successor, certificates, stranger] = [ed25519(), ed25519(), ed25519(), ed25519()];
  const closed = { start: "2026-01-01T00:00:00Z", end: "2026-02-01T00:05:00Z" };
  const open = { start: "2026-02-01T00:00:00Z" };
  const root = {
    tlogs: [
      // An artifact log is listed twice, its v1 id (SHA-256 of the SPKI) first.
      await tlog("artifacts.example", frozen, await v.sha256(v.utf8("spki")), closed),
      await tlog("artifacts.example", frozen, null, closed),
      await tlog("artifacts-2.example", successor, null, open),
      await tlog("certificates.example", certificates, null, open),
      // Named by another id only: left out.
      await tlog("stranger.example", stranger, new Uint8Array(32), open),
    ],
  };
  const { verifiers, notes } = await v.trustedLogKeys(root);
  assert.deepEqual(
    verifiers.map((verifier) => [verifier.name, verifier.window.start, verifier.window.end]),
    [
      ["artifacts.example", Date.parse(closed.start), Date.parse(closed.end)],
      ["artifacts-2.example", Date.parse(open.start), null],
      ["certificates.example", Date.parse(open.start), null],
    ],
  );
  assert.match(notes.join("\n"), /stranger\.example: no logId\.keyId is its C2SP key id/);
  const window = verifiers[0].window;
  assert.ok(v.inWindow(window, Date.parse("2026-01-15T00:00:00Z")));
  assert.ok(!v.inWindow(window, Date.parse("2026-02-01T00:05:01Z")));
  assert.ok(!v.inWindow(window, Date.parse("2025-12-31T23:59:59Z")));
  assert.ok(!v.inWindow(window, NaN));
  assert.ok(v.inWindow(verifiers[1].window, Date.parse("2099-01-01T00:00:00Z")));
  // A window without a readable start leaves the key out.
  root.tlogs[3].publicKey.validFor = { start: "yesterday" };
  const without = await v.trustedLogKeys(root);
  assert.ok(!without.verifiers.some((verifier) => verifier.name === "certificates.example"));
  assert.match(without.notes.join("\n"), /validFor/);
});

test("a verifier key made by tlog::keys (its base64 holds a '+'): the key id matches", async () => {
  const vkey = "artifacts.cairn.localhost+15445028+AXk+caLfhZUgMyONt8YxhSJDwuOMB67fuCQjKWhEiaIF";
  const key = await v.parseVerifierKey(vkey);
  assert.equal(key.name, "artifacts.cairn.localhost");
  assert.equal(v.toHex(key.keyId), "15445028");
  assert.equal((await v.makeVerifier(key.name, v.TYPE_ED25519, key.publicKey)).vkey, vkey);
  await assert.rejects(v.parseVerifierKey(vkey.replace("15445028", "15445029")));
});

test("the tlog-cosignature spec's example line: key id and timestamp", () => {
  const line = "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";
  const note = v.parseNote(`example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n${line}`);
  assert.equal(v.toHex(note.signatures[0].keyId), "8d66cf3f");
  const stamp = new DataView(note.signatures[0].signature.buffer, note.signatures[0].signature.byteOffset, 8);
  assert.equal(stamp.getBigUint64(0), 1679315147n);
  assert.equal(
    new TextDecoder().decode(v.cosignedMessage("example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n", 1679315147n)),
    "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n",
  );
});

test("cosignatures against a 2-of-3 policy", async () => {
  const log = ed25519();
  const witnesses = [ed25519(), ed25519(), ed25519()];
  const root = await mth([v.utf8("a"), v.utf8("b")]);
  const logKey = await v.makeVerifier("log.example", v.TYPE_ED25519, log.raw);
  const keys = await Promise.all(witnesses.map((w, i) => v.makeVerifier(`w${i}.example`, v.TYPE_COSIGNATURE_V1, w.raw)));
  const policy = await parsePolicy(
    `# a comment\nlog ${logKey.vkey} http://log.example\n` +
      keys.map((key, i) => `witness w${i} ${key.vkey}`).join("\n") +
      "\ngroup two 2 w0 w1 w2\nquorum two\n",
  );
  const cosigned = async (which) =>
    v.parseNote(
      (await signedCheckpoint("log.example", log, 2, root, which.map((i) => ({ name: `w${i}.example`, key: witnesses[i], time: 1700000000 + i })))).note,
    );
  assert.ok((await checkCosignatures(policy, await cosigned([0, 2]))).met);
  const one = await checkCosignatures(policy, await cosigned([1]));
  assert.ok(!one.met);
  assert.deepEqual(one.witnesses.map((w) => w.status), ["absent", "verified", "absent"]);
  // A cosignature over another checkpoint text fails, and fails the note.
  const note = await cosigned([0, 1]);
  const forged = { ...note, text: note.text.replace("\n2\n", "\n3\n") };
  const checked = await checkCosignatures(policy, forged);
  assert.ok(!checked.met);
  assert.ok(checked.witnesses.some((w) => w.status === "failed"));
  assert.ok(quorumMet({ ...policy, quorum: "none" }, new Set()));
  for (const bad of ["quorum nobody\n", "witness none x\nquorum none\n", "group g 2 a\nquorum g\n", "log x\n", ""]) {
    await assert.rejects(parsePolicy(bad), bad);
  }
});

test("DER: OIDs and a certificate-log leaf", () => {
  assert.equal(oidText(Uint8Array.from([0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xbf, 0x30, 0x01, 0x08])), "1.3.6.1.4.1.57264.1.8");
  const leaf = Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 42, 0, 0, 0, 0, 2, 0x30, 0x00, 0, 0]);
  const entry = parseCtLeaf(leaf);
  assert.equal(entry.type, "x509");
  assert.equal(entry.timestampMs, 42n);
  assert.throws(() => parseCtLeaf(leaf.subarray(0, 18)));
  assert.throws(() => pemToDer("no pem"));
});
