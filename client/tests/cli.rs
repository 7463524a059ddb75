//! The `cairn` binary: the sigstore-conformance client protocol (`verify-bundle`) over every
//! conformance case, as the conformance harness would call it, and `cairn verify`'s output
//! and exit codes (0 verified, 1 not verified, 2 usage, 3 unreadable input).

#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sigstore-conformance")
}

fn cairn(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cairn"))
        .args(args)
        .output()
        .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `verify-bundle` exactly as the protocol's harness builds the command line.
#[test]
fn verify_bundle_protocol_over_every_case() {
    let mut cases: Vec<PathBuf> = fs::read_dir(suite().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    let mut wrong = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let or_default = |file: &str, default: PathBuf| {
            let p = case.join(file);
            if p.exists() { p } else { default }
        };
        let root = or_default(
            "trusted_root.json",
            suite().join("public-good-trusted_root.json"),
        );
        let artifact = or_default("artifact", suite().join("a.txt"));
        let sha256 = format!(
            "sha256:{}",
            client::Artifact::from_bytes(&fs::read(&artifact).unwrap())
                .digest(tlog::entry::HashAlgorithm::Sha256)
                .unwrap()
                .to_hex()
        );
        let identity = fs::read_to_string(case.join("identity"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| IDENTITY.to_owned());
        let issuer = fs::read_to_string(case.join("issuer"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| ISSUER.to_owned());
        let bundle = case.join("bundle.sigstore.json");
        let key = case.join("key.pub");
        for subject in [path(&artifact).to_owned(), sha256] {
            let mut args = vec!["verify-bundle", "--bundle", path(&bundle)];
            if key.exists() {
                args.extend(["--key", path(&key)]);
            } else {
                args.extend([
                    "--certificate-identity",
                    &identity,
                    "--certificate-oidc-issuer",
                    &issuer,
                ]);
            }
            args.extend(["--trusted-root", path(&root), &subject]);
            let output = cairn(&args);
            let verified = output.status.success();
            if verified == name.ends_with("_fail") {
                wrong.push(format!(
                    "{name} {subject}: exit {:?} {}",
                    output.status.code(),
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            // Exit 1 for a bundle that does not verify, 3 for an unusable trusted root.
            if !verified {
                assert!(
                    matches!(output.status.code(), Some(1 | 3)),
                    "{name}: exit {:?}",
                    output.status.code()
                );
            }
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
}

#[test]
fn verify_prints_json_and_uses_documented_exit_codes() {
    let suite = suite();
    let bundle = suite.join("cases/happy-path-v0.3/bundle.sigstore.json");
    let root = suite.join("public-good-trusted_root.json");
    let artifact = suite.join("a.txt");
    let base = |identity: &str| {
        vec![
            "verify".to_owned(),
            path(&artifact).to_owned(),
            "--bundle".to_owned(),
            path(&bundle).to_owned(),
            "--cert-identity".to_owned(),
            identity.to_owned(),
            "--cert-oidc-issuer".to_owned(),
            ISSUER.to_owned(),
            "--trust-root".to_owned(),
            path(&root).to_owned(),
            "--json".to_owned(),
        ]
    };
    let run = |args: Vec<String>| cairn(&args.iter().map(String::as_str).collect::<Vec<_>>());

    let output = run(base(IDENTITY));
    assert_eq!(output.status.code(), Some(0));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["identity"], IDENTITY);
    assert_eq!(json["times"][0]["source"], "signed_entry_timestamp");

    let output = run(base("someone@example.com"));
    assert_eq!(output.status.code(), Some(1));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["verified"], false);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .starts_with("certificate identity"),
        "{json}"
    );

    // A missing bundle file is an input problem, not a verification verdict.
    let mut args = base(IDENTITY);
    args[3] = "/nonexistent/bundle.json".to_owned();
    assert_eq!(run(args).status.code(), Some(3));

    // An identity without an issuer is a usage error.
    let output = cairn(&["verify", "x", "--bundle", "b", "--cert-identity", "i"]);
    assert_eq!(output.status.code(), Some(2));
}
