#!/usr/bin/env python3
"""Seeds fuzz/corpus/<target>/ from real inputs in the repository: the Sigstore conformance
bundles and trusted roots (client/tests/data, tlog/testdata/entry), and what they carry
(certificates, RFC 3161 tokens, canonicalized entry bodies, checkpoints), plus a few
hand-written inputs for text formats and a CSR made by openssl. The signed formats Cairn
itself makes (notes, tlog-proofs, policies, Raft messages...) are seeded by
`cairn-fuzz --write-seeds` (fuzz-targets/src/seeds.rs). Files are named by content hash, so
running this again adds nothing twice. Usage: fuzz/seeds.py [corpus dir]."""

import base64
import glob
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "fuzz", "corpus")
PER_TARGET_MAX = 24


def save(target, data, limit=PER_TARGET_MAX):
    if isinstance(data, str):
        data = data.encode()
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    name = "seed-" + hashlib.sha256(data).hexdigest()[:16]
    path = os.path.join(directory, name)
    if os.path.exists(path):
        return
    if len([f for f in os.listdir(directory) if f.startswith("seed-")]) >= limit:
        return
    with open(path, "wb") as file:
        file.write(data)


def walk_bundle(bundle):
    material = bundle.get("verificationMaterial", {})
    certificates = []
    if "certificate" in material:
        certificates.append(material["certificate"]["rawBytes"])
    for cert in material.get("x509CertificateChain", {}).get("certificates", []):
        certificates.append(cert["rawBytes"])
    for raw in certificates:
        save("certificate", base64.b64decode(raw))
    stamps = material.get("timestampVerificationData", {}).get("rfc3161Timestamps", [])
    for stamp in stamps:
        save("rfc3161", base64.b64decode(stamp["signedTimestamp"]))
    for entry in material.get("tlogEntries", []):
        body = entry.get("canonicalizedBody")
        if body:
            decoded = base64.b64decode(body)
            save("entry_body", decoded)
            try:
                value = json.loads(decoded)
            except ValueError:
                continue
            if value.get("apiVersion", "").startswith("0.0."):
                # A v1 body is also a well-formed proposed entry (the same JSON shape).
                save("rekor_v1_entry", decoded)
                save("rekor_v1_retrieve", json.dumps({"entries": [value], "logIndexes": [0]}))
        envelope = entry.get("inclusionProof", {}).get("checkpoint", {}).get("envelope")
        if envelope:
            for target in ("note", "checkpoint", "cosignature"):
                save(target, envelope)


def main():
    bundles = sorted(glob.glob(os.path.join(ROOT, "client/tests/data/**/*.sigstore.json"), recursive=True))
    bundles += sorted(glob.glob(os.path.join(ROOT, "tlog/testdata/entry/*.sigstore.json")))
    for path in bundles:
        with open(path, "rb") as file:
            data = file.read()
        save("bundle", data)
        try:
            walk_bundle(json.loads(data))
        except (ValueError, KeyError, TypeError):
            pass
    for path in sorted(glob.glob(os.path.join(ROOT, "client/tests/data/**/trusted_root.json"), recursive=True)):
        with open(path, "rb") as file:
            data = file.read()
        save("trusted_root", data)
        root = json.loads(data)
        for authority in root.get("certificateAuthorities", []) + root.get("timestampAuthorities", []):
            for cert in authority.get("certChain", {}).get("certificates", []):
                save("certificate", base64.b64decode(cert["rawBytes"]))

    for path in ("tile/0/000", "tile/0/001.p/5", "tile/1/x001/234", "tile/entries/x001/234.p/5",
                 "tile/entries/000", "tile/2/x123/x456/789.p/255"):
        save("tile_path", path)
    entries = [b"", b"a", b"entry 1", bytes(range(256))]
    for width in (0, 3, 255):
        bundle = b"".join(struct.pack(">H", len(entry)) + entry for entry in entries)
        save("entry_bundle", bytes([width]) + bundle)
    save("rekor_v1_retrieve", json.dumps({
        "entryUUIDs": ["24296fb24b8ad77a" + "ab" * 32, "cd" * 32], "logIndexes": [0, 7]}))
    digest = base64.b64encode(hashlib.sha256(b"artifact").digest()).decode()
    for kind, details in (("publicKey", "PKIX_ECDSA_P256_SHA_256"), ("x509Certificate", "PKIX_ECDSA_P256_SHA_256"),
                          ("publicKey", "PKIX_ED25519")):
        save("rekor_v2_request", json.dumps({"hashedRekordRequestV002": {
            "digest": digest, "signature": {"content": base64.b64encode(b"\x30\x06\x02\x01\x01\x02\x01\x01").decode(),
            "verifier": {kind: {"rawBytes": base64.b64encode(b"\x30\x00").decode()}, "keyDetails": details}}}}))
    save("rekor_v2_request", json.dumps({"dsseRequestV002": {
        "envelope": {"payload": base64.b64encode(b"{}").decode(), "payloadType": "application/vnd.in-toto+json",
                     "signatures": [{"sig": base64.b64encode(b"sig").decode(), "keyid": ""}]},
        "verifiers": [{"publicKey": {"rawBytes": base64.b64encode(b"\x30\x00").decode()},
                       "keyDetails": "PKIX_ECDSA_P256_SHA_256"}]}}))

    # CSRs: P-256 and P-384, DER and PEM.
    with tempfile.TemporaryDirectory() as tmp:
        for curve in ("prime256v1", "secp384r1"):
            key = os.path.join(tmp, curve + ".key")
            subprocess.run(["openssl", "ecparam", "-name", curve, "-genkey", "-noout", "-out", key], check=True)
            for form in ("DER", "PEM"):
                out = subprocess.run(["openssl", "req", "-new", "-key", key, "-subj", "/CN=fuzz",
                                      "-outform", form], check=True, capture_output=True).stdout
                save("csr", out)


if __name__ == "__main__":
    main()
