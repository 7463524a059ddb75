//! `cairn log search|verify|consistency|tail` against a `cairn-node dev` cluster: search by
//! artifact, digest, certificate, e-mail and identity (the certificate log too) on every node;
//! an entry's inclusion proved against a verified checkpoint, and refused when the entry is
//! unknown or a node tampers with its proof; consistency between sizes; a tail that stops.
//!
//! Needs the `cairn` binary next to `cairn-node`: run with `cargo test -p node -p client`.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

mod dev_cluster;

use dev_cluster::{Dev, cairn, text};

fn ok(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(0), "{}", text(output));
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn fails(output: &Output, code: i32, reason: &str) {
    assert_eq!(output.status.code(), Some(code), "{}", text(output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(reason), "want {reason:?}; {}", text(output));
}

/// The UUID, index and signing certificate (PEM) of a bundle's log entry.
fn logged(bundle: &Path) -> (String, u64, String) {
    let bundle: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bundle).unwrap()).unwrap();
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let body = BASE64
        .decode(entry["canonicalizedBody"].as_str().unwrap())
        .unwrap();
    let uuid = hex::encode(tlog::leaf_hash(&body).as_bytes());
    let index = entry["logIndex"].as_str().unwrap().parse().unwrap();
    let der = BASE64
        .decode(
            bundle["verificationMaterial"]["certificate"]["rawBytes"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let pem = tlog::entry::KeyMaterial::from_certificate_der(&der)
        .unwrap()
        .to_pem();
    (uuid, index, pem)
}

#[test]
fn search_verify_consistency_and_tail_against_a_dev_cluster() {
    let temp = tempfile::tempdir().unwrap();
    let dev = Dev::start(&temp.path().join("cluster"));
    let home = temp.path().join("home");
    let root = dev.0.dir().join("trusted_root.json");
    let root = root.to_str().unwrap();
    let login = cairn(
        &home,
        &[
            "login",
            "--dev",
            "Alice@Example.com",
            "--dev-issuer",
            &dev.issuer(),
        ],
    );
    ok(&login);
    let mut signed = Vec::new();
    for (name, content) in [("hello.txt", "hello, cairn\n"), ("other.bin", "another")] {
        let artifact = temp.path().join(name);
        std::fs::write(&artifact, content).unwrap();
        ok(&cairn(
            &home,
            &["sign", "--url", &dev.url(1), artifact.to_str().unwrap()],
        ));
        let bundle = temp.path().join(format!("{name}.sigstore.json"));
        signed.push((artifact, logged(&bundle)));
    }
    let (hello, (hello_uuid, hello_index, hello_cert)) = &signed[0];
    let digest = hex::encode(tlog::Hash::digest(b"hello, cairn\n").as_bytes());

    // Search: by artifact, digest, certificate and e-mail, on every node alike.
    for node in 0..3 {
        let url = dev.url(node);
        let search = |args: &[&str]| {
            let mut all = vec!["log", "search", "--url", &url];
            all.extend_from_slice(args);
            cairn(&home, &all)
        };
        assert_eq!(
            ok(&search(&["--artifact", hello.to_str().unwrap()])),
            format!("{hello_uuid}\n")
        );
        assert_eq!(
            ok(&search(&["--sha256", &digest.to_uppercase()])),
            format!("{hello_uuid}\n")
        );
        let json: serde_json::Value = serde_json::from_str(&ok(&search(&[
            "--sha256",
            &format!("sha256:{digest}"),
            "--json",
        ])))
        .unwrap();
        assert_eq!(json["count"], 1);
        assert_eq!(json["entries"][0]["uuid"], hello_uuid.as_str());
        let cert = temp.path().join("hello.pem");
        std::fs::write(&cert, hello_cert).unwrap();
        assert_eq!(
            ok(&search(&["--public-key", cert.to_str().unwrap()])),
            format!("{hello_uuid}\n")
        );
        // The e-mail in any case finds both entries; with the digest and "and", one.
        let both = ok(&search(&["--email", "alice@example.COM"]));
        assert_eq!(both.lines().count(), 2, "{both}");
        assert!(both.contains(hello_uuid.as_str()));
        assert_eq!(
            ok(&search(&[
                "--email",
                "alice@example.com",
                "--sha256",
                &digest,
                "--operator",
                "and"
            ])),
            format!("{hello_uuid}\n")
        );
        // By identity, paged, with indices: the artifact log, and every certificate issued
        // (a precertificate and a certificate per signing).
        let by_identity = ok(&search(&["--identity", "alice@example.com"]));
        assert!(
            by_identity.contains(&format!("{hello_index} {hello_uuid}")),
            "{by_identity}"
        );
        let certificates: serde_json::Value = serde_json::from_str(&ok(&search(&[
            "--identity",
            "alice@example.com",
            "--log",
            "certificates",
            "--json",
        ])))
        .unwrap();
        assert_eq!(certificates["count"], 4, "{certificates}");
        let nobody = search(&["--identity", "bob@example.com", "--log", "certificates"]);
        assert_eq!(ok(&nobody), "");
        // Nothing is sent for a malformed digest; an unknown one finds nothing.
        fails(&search(&["--sha256", "sha256:abc"]), 3, "64 hex digits");
        assert_eq!(ok(&search(&["--sha256", &"0".repeat(64)])), "");
        fails(&search(&[]), 3, "give --artifact");
    }

    // Verify: by index and UUID (through another node), against a fresh verified checkpoint.
    let verify = |args: &[&str]| {
        let mut all = vec!["log", "verify", "--trust-root", root];
        all.extend_from_slice(args);
        cairn(&home, &all)
    };
    let url0 = dev.url(0);
    let out = ok(&verify(&[
        "--url",
        &url0,
        "--index",
        &hello_index.to_string(),
    ]));
    assert!(
        out.starts_with(&format!("OK: entry {hello_index} ({hello_uuid})")),
        "{out}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(&verify(&[
        "--url",
        &dev.url(2),
        "--uuid",
        hello_uuid,
        "--json",
    ])))
    .unwrap();
    assert_eq!(json["verified"], true);
    assert_eq!(json["log_index"], *hello_index);
    fails(
        &verify(&["--url", &url0, "--uuid", &"0".repeat(64)]),
        1,
        "no entry",
    );
    fails(
        &verify(&["--url", &url0, "--index", "999999"]),
        1,
        "no entry",
    );
    fails(
        &verify(&["--url", &url0, "--uuid", "not-hex"]),
        3,
        "64 hex digits",
    );
    assert_eq!(verify(&["--url", &url0]).status.code(), Some(2));

    // A node that tampers with inclusion proofs is caught.
    let proxy = tampering_proxy(&url0);
    fails(
        &verify(&["--url", &proxy, "--index", &hello_index.to_string()]),
        1,
        "inclusion proof",
    );

    // `get` prints the entry as the log returns it, and with a trusted root only once its
    // inclusion is proved.
    let get = |url: &str, args: &[&str]| {
        let mut all = vec!["log", "get", "--url", url];
        all.extend_from_slice(args);
        cairn(&home, &all)
    };
    let index = hello_index.to_string();
    let printed: serde_json::Value = serde_json::from_str(&ok(&get(&url0, &[&index]))).unwrap();
    assert_eq!(printed[hello_uuid.as_str()]["logIndex"], *hello_index);
    assert_eq!(
        printed[hello_uuid.as_str()]["decodedBody"]["kind"],
        "hashedrekord"
    );
    let checked = get(&url0, &[hello_uuid, "--trust-root", root]);
    ok(&checked);
    assert!(String::from_utf8_lossy(&checked.stderr).contains("verified: entry"));
    fails(
        &get(&proxy, &[&index, "--trust-root", root]),
        1,
        "inclusion proof",
    );
    assert_eq!(get(&proxy, &[&index]).status.code(), Some(0));
    fails(&get(&url0, &["nope"]), 3, "want an index or a UUID");

    // Consistency between sizes, proved against the verified checkpoint.
    let consistency = |args: &[&str]| {
        let mut all = vec!["log", "consistency", "--url", &url0, "--trust-root", root];
        all.extend_from_slice(args);
        cairn(&home, &all)
    };
    let out = ok(&consistency(&["--from", "1"]));
    assert!(out.starts_with("OK: size 1 "), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&ok(&consistency(&["--from", "1", "--to", "2", "--json"]))).unwrap();
    assert_eq!(
        (json["from"].as_u64(), json["to"].as_u64()),
        (Some(1), Some(2))
    );
    fails(&consistency(&["--from", "0"]), 3, "at least 1");
    fails(
        &consistency(&["--from", "2", "--to", "1"]),
        3,
        "at least --from",
    );
    fails(&consistency(&["--from", "1", "--to", "999999"]), 1, "only");

    // Tail from the start: the first two entries, verified, then it stops.
    let tail = ok(&cairn(
        &home,
        &[
            "log",
            "tail",
            "--url",
            &url0,
            "--trust-root",
            root,
            "--from",
            "0",
            "--count",
            "2",
            "--json",
        ],
    ));
    let lines: Vec<serde_json::Value> = tail
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{tail}");
    assert_eq!(lines[0]["log_index"], 0);
    assert_eq!(lines[1]["log_index"], 1);
    assert!(lines.iter().all(|line| line["verified"] == true));
    // A new entry while tailing from the end is printed when its checkpoint arrives.
    let follower = std::process::Command::new(dev_cluster::cairn_bin())
        .env("CAIRN_HOME", &home)
        .args([
            "log",
            "tail",
            "--url",
            &url0,
            "--trust-root",
            root,
            "--count",
            "1",
            "--interval",
            "1",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let late = temp.path().join("late.txt");
    std::fs::write(&late, "late").unwrap();
    ok(&cairn(
        &home,
        &["sign", "--url", &url0, late.to_str().unwrap()],
    ));
    let (late_uuid, late_index, _) = logged(&temp.path().join("late.txt.sigstore.json"));
    let output = follower.wait_with_output().unwrap();
    let printed = ok(&output);
    assert!(
        printed.starts_with(&format!("{late_index} {late_uuid} hashedrekord")),
        "{printed}"
    );
}

/// A proxy in front of `upstream` that flips a byte of every inclusion proof's first hash in
/// Rekor v1 entry answers and passes everything else through; returns its URL.
fn tampering_proxy(upstream: &str) -> String {
    let upstream = upstream.strip_prefix("http://").unwrap().to_owned();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            let mut request = Vec::new();
            let mut byte = [0u8; 1];
            while !request.ends_with(b"\r\n\r\n") {
                if client.read(&mut byte).unwrap_or(0) == 0 {
                    break;
                }
                request.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&request).into_owned();
            let mut words = head.split_whitespace();
            let (method, path) = (words.next().unwrap_or("GET"), words.next().unwrap_or("/"));
            let mut server = TcpStream::connect(&upstream).unwrap();
            write!(
                server,
                "{method} {path} HTTP/1.1\r\nHost: {upstream}\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut answer = Vec::new();
            server.read_to_end(&mut answer).unwrap();
            let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
            let status = String::from_utf8_lossy(&answer[..split])
                .lines()
                .next()
                .unwrap()
                .to_owned();
            let mut body = answer[split + 4..].to_vec();
            if path.starts_with("/api/v1/log/entries")
                && let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&body)
                && let Some(entries) = value.as_object_mut()
            {
                for entry in entries.values_mut() {
                    let hash = &mut entry["verification"]["inclusionProof"]["hashes"][0];
                    if let Some(text) = hash.as_str() {
                        let flipped = if text.starts_with('0') { "1" } else { "0" };
                        *hash = format!("{flipped}{}", &text[1..]).into();
                    }
                }
                body = serde_json::to_vec(&value).unwrap();
            }
            let _ = write!(
                client,
                "{status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            let _ = client.write_all(&body);
        }
    });
    url
}
