//! Container images end to end, against a real registry: Debian's `docker-registry` (the CNCF
//! distribution registry) on loopback, and a `cairn-node dev` cluster. The test pushes small
//! images of its own through the registry API, signs one with `cairn sign-image` as two
//! identities and another with a managed key, attests to it, verifies with `cairn
//! verify-image` (with witness policies too, and a bundle stored in cosign 3's referrers layout
//! under the referrers tag schema), then moves the tag, copies signatures onto another image,
//! and asks for images and registries that are not there.
//!
//! Needs `/usr/bin/docker-registry` (`apt-get install docker-registry`; `scripts/test` installs
//! it) and the `cairn-node` binary next to `cairn` (`cargo test --workspace`, or `cargo build
//! -p node` first).

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

fn cairn_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cairn"))
}

fn node_bin() -> PathBuf {
    let path = cairn_bin().with_file_name("cairn-node");
    assert!(
        path.exists(),
        "{} is missing: build the node too (cargo build -p node, or cargo test --workspace)",
        path.display()
    );
    path
}

/// A free loopback port (bound, then released).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process stopped with SIGTERM (then killed) when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `docker-registry serve` on 127.0.0.1 with its storage in `dir`; returns it and `host:port`.
fn start_registry(dir: &Path) -> (Running, String) {
    assert!(
        Path::new(REGISTRY_BIN).exists(),
        "{REGISTRY_BIN} is missing: install Debian's registry with \
         `apt-get install -y docker-registry` (scripts/test does)"
    );
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {host}\n",
            dir.join("storage").display()
        ),
    )
    .unwrap();
    let log = dir.join("registry.log");
    let child = Command::new(REGISTRY_BIN)
        .arg("serve")
        .arg(&config)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(dir.join("registry.err")).unwrap())
        .spawn()
        .unwrap();
    let running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if std::net::TcpStream::connect(&host).is_ok()
            && request("GET", &host, "/v2/", &[], b"").0 == 200
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the registry did not start; see {}",
            dir.join("registry.err").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (running, host)
}

/// `cairn-node dev` with one node (`node::dev_process`); returns it, its URL and its issuer's
/// URL.
fn start_dev(dir: &Path) -> (node::dev_process::DevProcess, String, String) {
    let options = node::dev_process::DevOptions::new(&node_bin(), dir, 1);
    let dev = node::dev_process::DevProcess::start(options).unwrap();
    let (url, issuer) = (dev.url(0), dev.issuer());
    (dev, url, issuer)
}

/// One HTTP/1.1 request to `host`: (status, head, body).
fn request(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let split = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let mut body = answer[split + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = body.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[line + 2..line + 2 + size]);
        body = &body[line + 2 + size + 2..];
    }
}

fn header<'a>(head: &'a str, name: &str) -> &'a str {
    head.lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then_some(value.trim())
        })
        .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    format!(
        "sha256:{}",
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
    )
}

/// Uploads a blob through the registry's two-step upload API; returns its digest.
fn push_blob(host: &str, repository: &str, blob: &[u8]) -> String {
    let digest = sha256(blob);
    let (status, head, _) = request(
        "POST",
        host,
        &format!("/v2/{repository}/blobs/uploads/"),
        &[],
        b"",
    );
    assert_eq!(status, 202, "{head}");
    let location = header(&head, "location");
    let location = location
        .strip_prefix(&format!("http://{host}"))
        .unwrap_or(location);
    let separator = if location.contains('?') { '&' } else { '?' };
    let (status, head, _) = request(
        "PUT",
        host,
        &format!("{location}{separator}digest={digest}"),
        &[("Content-Type", "application/octet-stream")],
        blob,
    );
    assert_eq!(status, 201, "{head}");
    digest
}

fn put_manifest(host: &str, repository: &str, reference: &str, manifest: &[u8]) {
    let (status, head, body) = request(
        "PUT",
        host,
        &format!("/v2/{repository}/manifests/{reference}"),
        &[("Content-Type", OCI_MANIFEST)],
        manifest,
    );
    assert_eq!(status, 201, "{head}\n{}", String::from_utf8_lossy(&body));
}

fn get_manifest(host: &str, repository: &str, reference: &str) -> Vec<u8> {
    let (status, head, body) = request(
        "GET",
        host,
        &format!("/v2/{repository}/manifests/{reference}"),
        &[("Accept", OCI_MANIFEST)],
        b"",
    );
    assert_eq!(status, 200, "{reference}: {head}");
    body
}

/// Pushes a one-layer image whose layer is `content`, tagged `tag`; returns its digest.
fn push_image(host: &str, repository: &str, tag: &str, content: &[u8]) -> String {
    let layer = push_blob(host, repository, content);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": { "type": "layers", "diff_ids": [layer] },
        "config": {},
    }))
    .unwrap();
    let config_digest = push_blob(host, repository, &config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer,
            "size": content.len(),
        }],
    }))
    .unwrap();
    put_manifest(host, repository, tag, &manifest);
    sha256(&manifest)
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine as _;
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The signature by `email` in `verify-image --json` output.
fn by_in<'a>(json: &'a Value, email: &str) -> &'a Value {
    json["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["identity"] == email && s["kind"] == "signature")
        .unwrap_or_else(|| panic!("no signature by {email}: {json}"))
}

fn cairn(home: &Path, args: &[&str]) -> Output {
    Command::new(cairn_bin())
        .env("CAIRN_HOME", home)
        .env("DOCKER_CONFIG", home.join("docker"))
        .env_remove("SIGSTORE_ID_TOKEN")
        .env_remove("CAIRN_URL")
        .env_remove("CAIRN_TRUST_ROOT")
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

struct Setup {
    url: String,
    issuer: String,
    root: PathBuf,
}

impl Setup {
    fn login(&self, home: &Path, email: &str) {
        let output = cairn(
            home,
            &["login", "--dev", email, "--dev-issuer", &self.issuer],
        );
        assert!(output.status.success(), "{}", text(&output));
    }

    fn verify(&self, home: &Path, image: &str, identity: &str, extra: &[&str]) -> (Output, Value) {
        let mut args = vec![
            "verify-image",
            image,
            "--cert-identity",
            identity,
            "--cert-oidc-issuer",
            &self.issuer,
            "--trust-root",
            self.root.to_str().unwrap(),
            "--json",
        ];
        args.extend_from_slice(extra);
        let output = cairn(home, &args);
        let json = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        (output, json)
    }
}

#[test]
fn sign_attest_and_verify_images_in_a_local_registry() {
    let temp = tempfile::tempdir().unwrap();
    let (_registry, host) = start_registry(temp.path());
    let (_dev, url, issuer) = start_dev(&temp.path().join("dev"));
    let setup = Setup {
        url,
        issuer,
        root: temp.path().join("dev/trusted_root.json"),
    };
    let alice = temp.path().join("alice");
    let bob = temp.path().join("bob");
    setup.login(&alice, "alice@example.com");
    setup.login(&bob, "bob@example.com");

    let a = push_image(&host, "team/app", "v1", b"image A's only layer");
    let b = push_image(&host, "team/app", "b", b"image B's only layer");
    let c = push_image(&host, "team/app", "c", b"image C's only layer");
    let image = format!("{host}/team/app:v1");

    // Alice signs the tag: the digest is what is signed, stored in cosign's `.sig` tag (this
    // registry has no referrers API).
    let output = cairn(&alice, &["sign-image", &image, "--url", &setup.url]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let sig_tag = format!("{}.sig", a.replace(':', "-"));
    assert!(stdout.contains(&format!("team/app@{a}")), "{stdout}");
    assert!(
        stdout.contains(&format!("stored as tag {sig_tag}")),
        "{stdout}"
    );

    // The layout cosign reads: a simple-signing layer naming the digest, with its signature,
    // certificate and SET bundle annotations.
    let manifest: Value =
        serde_json::from_slice(&get_manifest(&host, "team/app", &sig_tag)).unwrap();
    let layer = &manifest["layers"][0];
    assert_eq!(
        layer["mediaType"],
        "application/vnd.dev.cosign.simplesigning.v1+json"
    );
    for annotation in [
        "dev.cosignproject.cosign/signature",
        "dev.sigstore.cosign/certificate",
        "dev.sigstore.cosign/chain",
        "dev.sigstore.cosign/bundle",
        "dev.cairn/sigstore-bundle",
    ] {
        assert!(
            layer["annotations"][annotation]
                .as_str()
                .is_some_and(|v| !v.is_empty()),
            "{annotation} missing: {manifest}"
        );
    }
    let (status, _, payload) = request(
        "GET",
        &host,
        &format!("/v2/team/app/blobs/{}", layer["digest"].as_str().unwrap()),
        &[],
        b"",
    );
    assert_eq!(status, 200);
    let payload: Value = serde_json::from_slice(&payload).unwrap();
    assert_eq!(
        payload["critical"]["image"]["docker-manifest-digest"],
        a.as_str()
    );
    assert_eq!(
        payload["critical"]["type"],
        "cosign container image signature"
    );

    // Verified for Alice, offline against the trusted root.
    let (output, json) = setup.verify(&alice, &image, "alice@example.com", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert_eq!(json["verified"], true);
    assert_eq!(json["digest"], a.as_str());
    assert_eq!(json["signatures"].as_array().unwrap().len(), 1, "{json}");
    assert_eq!(json["signatures"][0]["identity"], "alice@example.com");
    assert!(String::from_utf8_lossy(&output.stdout).contains("alice@example.com"));

    // Bob signs too: his signature is a second layer, reported separately.
    let output = cairn(
        &bob,
        &[
            "sign-image",
            &format!("{host}/team/app@{a}"),
            "--url",
            &setup.url,
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let (output, json) = setup.verify(&alice, &image, "alice@example.com", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let signatures = json["signatures"].as_array().unwrap();
    assert_eq!(signatures.len(), 2, "{json}");
    let by = |email: &str| {
        signatures
            .iter()
            .find(|s| s["identity"] == email)
            .unwrap_or_else(|| panic!("no signature by {email}: {json}"))
    };
    assert_eq!(by("alice@example.com")["verified"], true);
    assert_eq!(by("bob@example.com")["verified"], false);
    assert_eq!(by("bob@example.com")["other_identity"], true);
    let (output, _) = setup.verify(&alice, &image, "bob@example.com", &[]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    // Nobody asked for signed it: exit 1, naming who did.
    let (output, json) = setup.verify(&alice, &image, "carol@example.com", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let error = json["error"].as_str().unwrap();
    assert!(
        error.contains("signed only by") && error.contains("alice@example.com"),
        "{error}"
    );

    // --witness-policy: a policy naming the log and needing no witness holds; one needing a
    // witness that never cosigned fails each signature, naming the policy.
    let cluster: Value =
        serde_json::from_slice(&std::fs::read(temp.path().join("dev/cluster.json")).unwrap())
            .unwrap();
    let log = cluster["logs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|log| log["name"] == "artifacts")
        .unwrap()["verifier_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let lenient = temp.path().join("lenient.policy");
    std::fs::write(&lenient, format!("log {log}\nquorum none\n")).unwrap();
    let (output, _) = setup.verify(
        &alice,
        &image,
        "alice@example.com",
        &["--witness-policy", lenient.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let witness = tlog::keys::Cosigner::new(
        "witness.example",
        ed25519_dalek::SigningKey::from_bytes(&[5; 32]),
    )
    .unwrap();
    let strict = temp.path().join("strict.policy");
    std::fs::write(
        &strict,
        format!("log {log}\nwitness w {}\nquorum w\n", witness.verifier()),
    )
    .unwrap();
    let (output, json) = setup.verify(
        &alice,
        &image,
        "alice@example.com",
        &["--witness-policy", strict.to_str().unwrap()],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        by_in(&json, "alice@example.com")["error"]
            .as_str()
            .unwrap()
            .starts_with("witness policy"),
        "{json}"
    );

    // An attestation, in cosign's `.att` tag; verified by its predicate type.
    let predicate = temp.path().join("predicate.json");
    std::fs::write(
        &predicate,
        br#"{"builder": {"id": "https://ci.example/builder"}}"#,
    )
    .unwrap();
    let kind = "https://example.com/test-predicate/v1";
    let output = cairn(
        &alice,
        &[
            "attest-image",
            &image,
            "--predicate",
            predicate.to_str().unwrap(),
            "--type",
            kind,
            "--url",
            &setup.url,
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("stored as tag {}.att", a.replace(':', "-"))),
        "{}",
        text(&output)
    );
    let (output, json) = setup.verify(&alice, &image, "alice@example.com", &["--type", kind]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let attestation = json["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "attestation")
        .unwrap();
    assert_eq!(attestation["predicate_type"], kind);
    assert_eq!(attestation["verified"], true);
    let (output, json) = setup.verify(
        &alice,
        &image,
        "alice@example.com",
        &["--type", "https://slsa.dev/provenance/v1"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        json["error"].as_str().unwrap().contains("no attestation"),
        "{json}"
    );

    // cosign 3's layout on a registry without the referrers API: the bundle as a referrer
    // manifest (artifactType the bundle type, the image as subject), listed in an index under
    // the referrers tag schema's tag `sha256-<hex>`. verify-image finds and verifies it there.
    let att: Value = serde_json::from_slice(&get_manifest(
        &host,
        "team/app",
        &format!("{}.att", a.replace(':', "-")),
    ))
    .unwrap();
    let bundle = att["layers"][0]["annotations"]["dev.cairn/sigstore-bundle"]
        .as_str()
        .unwrap()
        .as_bytes()
        .to_vec();
    let bundle_type = "application/vnd.dev.sigstore.bundle.v0.3+json";
    let empty = push_blob(&host, "team/app", b"{}");
    let bundle_digest = push_blob(&host, "team/app", &bundle);
    let image_manifest = get_manifest(&host, "team/app", &a);
    let referrer = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": bundle_type,
        "config": { "mediaType": "application/vnd.oci.empty.v1+json", "digest": empty, "size": 2 },
        "layers": [{ "mediaType": bundle_type, "digest": bundle_digest, "size": bundle.len() }],
        "subject": { "mediaType": OCI_MANIFEST, "digest": a, "size": image_manifest.len() },
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": kind,
        },
    }))
    .unwrap();
    let referrer_digest = sha256(&referrer);
    put_manifest(&host, "team/app", &referrer_digest, &referrer);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": OCI_MANIFEST,
            "digest": referrer_digest,
            "size": referrer.len(),
            "artifactType": bundle_type,
        }],
    }))
    .unwrap();
    let (status, head, _) = request(
        "PUT",
        &host,
        &format!("/v2/team/app/manifests/{}", a.replace(':', "-")),
        &[("Content-Type", "application/vnd.oci.image.index.v1+json")],
        &index,
    );
    assert_eq!(status, 201, "{head}");
    let (output, json) = setup.verify(&alice, &image, "alice@example.com", &["--type", kind]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    let from_referrer = json["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["stored"] == "referrer")
        .unwrap_or_else(|| panic!("the referrer was not found: {json}"));
    assert_eq!(from_referrer["verified"], true, "{json}");
    assert_eq!(from_referrer["predicate_type"], kind);
    assert_eq!(
        from_referrer["place"],
        format!("referrer {referrer_digest}")
    );

    // Signatures copied onto another image do not verify there: digest mismatch.
    let copied = get_manifest(&host, "team/app", &sig_tag);
    put_manifest(
        &host,
        "team/app",
        &format!("{}.sig", b.replace(':', "-")),
        &copied,
    );
    let (output, json) = setup.verify(
        &alice,
        &format!("{host}/team/app:b"),
        "alice@example.com",
        &[],
    );
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    for signature in json["signatures"].as_array().unwrap() {
        assert!(
            signature["error"]
                .as_str()
                .unwrap()
                .starts_with("digest mismatch"),
            "{json}"
        );
    }

    // The tag moves to an unsigned image: verifying the tag fails, and so does the tag pinned
    // to the digest that was signed; the signed digest itself still verifies.
    put_manifest(
        &host,
        "team/app",
        "v1",
        &get_manifest(&host, "team/app", &c),
    );
    let (output, json) = setup.verify(&alice, &image, "alice@example.com", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    assert!(
        json["error"].as_str().unwrap().contains("no signature"),
        "{json}"
    );
    let (output, _) = setup.verify(&alice, &format!("{image}@{a}"), "alice@example.com", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("digest mismatch") && stderr.contains(&c),
        "{}",
        text(&output)
    );
    let (output, _) = setup.verify(
        &alice,
        &format!("{host}/team/app@{a}"),
        "alice@example.com",
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));

    // A managed key (`--key`): no certificate; verified with the public key only.
    let d = push_image(&host, "team/app", "d", b"image D's only layer");
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = aws_lc_rs::signature::EcdsaKeyPair::generate_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        &rng,
    )
    .unwrap();
    let pair = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1_SIGNING,
        pkcs8.as_ref(),
    )
    .unwrap();
    use aws_lc_rs::encoding::AsDer as _;
    use aws_lc_rs::signature::KeyPair as _;
    let spki = pair.public_key().as_der().unwrap();
    let private_pem = temp.path().join("managed.key");
    std::fs::write(&private_pem, pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
    let public_pem = temp.path().join("managed.pub");
    std::fs::write(&public_pem, pem("PUBLIC KEY", spki.as_ref())).unwrap();
    let keyed = format!("{host}/team/app:d");
    let output = cairn(
        &alice,
        &[
            "sign-image",
            &keyed,
            "--url",
            &setup.url,
            "--key",
            private_pem.to_str().unwrap(),
        ],
    );
    assert!(output.status.success(), "{}", text(&output));
    let output = cairn(
        &alice,
        &[
            "verify-image",
            &keyed,
            "--key",
            public_pem.to_str().unwrap(),
            "--trust-root",
            setup.root.to_str().unwrap(),
        ],
    );
    assert_eq!(output.status.code(), Some(0), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stdout)
            .contains(&format!("OK: signature on {host}/team/app@{d}")),
        "{}",
        text(&output)
    );
    let (output, _) = setup.verify(&alice, &keyed, "alice@example.com", &[]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output));

    // No such image; no registry there.
    let (output, _) = setup.verify(
        &alice,
        &format!("{host}/team/nothing:v1"),
        "alice@example.com",
        &[],
    );
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("image not found"),
        "{}",
        text(&output)
    );
    let closed = format!("127.0.0.1:{}/team/app:v1", free_port());
    let (output, _) = setup.verify(&alice, &closed, "alice@example.com", &[]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unreachable"),
        "{}",
        text(&output)
    );
    let output = cairn(&alice, &["sign-image", &closed, "--url", &setup.url]);
    assert_eq!(output.status.code(), Some(5), "{}", text(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unreachable"),
        "{}",
        text(&output)
    );
}
