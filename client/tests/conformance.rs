//! The sigstore-conformance offline bundle verification suite (`tests/data/sigstore-conformance`,
//! see its README for source and licence), run through the library: every case whose name ends
//! in `_fail` must be rejected and every other case accepted, both given the artifact and given
//! only its SHA-256 digest, as the conformance CLI protocol allows either.
//!
//! The test fails if the folder is missing or holds no case, so that a broken checkout cannot
//! pass by testing nothing.

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};

use client::{Artifact, Policy, key::PublicKey};

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore-conformance")
}

fn read_trimmed(path: &Path) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// Runs one case given the artifact (`digest_only == false`) or its digest; the verdict.
fn run(case: &Path, digest_only: bool) -> Result<(), String> {
    let bundle = fs::read(case.join("bundle.sigstore.json")).unwrap();
    let root_path = case.join("trusted_root.json");
    let root_path = if root_path.exists() {
        root_path
    } else {
        suite().join("public-good-trusted_root.json")
    };
    let root = fs::read(root_path).unwrap();
    let artifact_path = case.join("artifact");
    let artifact_path = if artifact_path.exists() {
        artifact_path
    } else {
        suite().join("a.txt")
    };
    let artifact_bytes = fs::read(artifact_path).unwrap();
    let artifact = if digest_only {
        let full = Artifact::from_bytes(&artifact_bytes);
        let sha256 = full
            .digest(tlog::entry::HashAlgorithm::Sha256)
            .unwrap()
            .as_bytes()
            .try_into()
            .unwrap();
        Artifact::from_sha256(sha256)
    } else {
        Artifact::from_reader(artifact_bytes.as_slice()).unwrap()
    };
    let policy = match fs::read(case.join("key.pub")) {
        Ok(pem) => Policy::Key(PublicKey::from_pem(&pem).map_err(|e| e.to_string())?),
        Err(_) => Policy::Identity {
            identity: read_trimmed(&case.join("identity"))
                .unwrap_or_else(|| DEFAULT_IDENTITY.to_owned()),
            issuer: read_trimmed(&case.join("issuer")).unwrap_or_else(|| DEFAULT_ISSUER.to_owned()),
        },
    };
    client::verify_bundle(&bundle, &root, &artifact, &policy)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn every_conformance_case_gives_the_expected_verdict() {
    let cases_dir = suite().join("cases");
    let mut cases: Vec<PathBuf> = fs::read_dir(&cases_dir)
        .unwrap_or_else(|e| panic!("{} is missing: {e}", cases_dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.join("bundle.sigstore.json").exists())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "{} holds no conformance case",
        cases_dir.display()
    );

    let mut wrong = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let should_fail = name.ends_with("_fail");
        for digest_only in [false, true] {
            let how = if digest_only { "digest" } else { "artifact" };
            let verdict = run(case, digest_only);
            match (&verdict, should_fail) {
                (Ok(()), false) => println!("ok      {name} ({how})"),
                (Err(reason), true) => println!("ok      {name} ({how}): rejected: {reason}"),
                (Ok(()), true) => {
                    println!("WRONG   {name} ({how}): accepted");
                    wrong.push(format!("{name} ({how}): accepted, must be rejected"));
                }
                (Err(reason), false) => {
                    println!("WRONG   {name} ({how}): {reason}");
                    wrong.push(format!("{name} ({how}): rejected: {reason}"));
                }
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} runs gave the wrong verdict:\n{}",
        wrong.len(),
        cases.len() * 2,
        wrong.join("\n")
    );
}
