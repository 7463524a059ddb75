//! CA, SCT key and TSA rotation with the real binaries (issue 21, point 2): a `cairn-node dev`
//! cluster signs a bundle (Rekor v2: a certificate with its SCT, and an RFC 3161 timestamp);
//! `cairn-node ca prepare --in N` adds the next CA, SCT key and TSA to every config; the
//! cluster restarts with them, and its trusted root lists the old and the new material with
//! their windows before the new is used. Once `from` has passed, a second bundle is signed, and
//! a trusted root holding only the new material verifies it (its certificate chains to the new
//! intermediate, its SCT and timestamp are by the new keys) and refuses the first; the full
//! trusted root, fetched after preparation, verifies both with `cairn verify`.
//!
//! A second test rotates twice, promoting each rotation once its `from` has passed (`cairn-node
//! ca promote`): the trusted root then lists three CAs, SCT keys and TSAs, the first two retired
//! (public parts only), and bundles signed under each verify against it.
//!
//! Needs the `cairn` binary next to `cairn-node`: run with `cargo test -p node -p client`.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod dev_cluster;

use dev_cluster::{Dev, NODE_BIN, cairn, get_json, text};

/// Signs `name` through `url` over the signing config's Rekor v2 (with a timestamp): the
/// artifact and its bundle.
fn sign(home: &Path, dir: &Path, url: &str, name: &str) -> (PathBuf, PathBuf) {
    let artifact = dir.join(name);
    std::fs::write(&artifact, format!("{name} contents\n")).unwrap();
    let signed = cairn(home, &["sign", "--url", url, artifact.to_str().unwrap()]);
    assert!(signed.status.success(), "{}", text(&signed));
    let bundle = dir.join(format!("{name}.sigstore.json"));
    assert!(bundle.exists(), "{}", text(&signed));
    (artifact, bundle)
}

/// `cairn verify` of `signed` against the trusted root `root`.
fn verifies(home: &Path, issuer: &str, signed: &(PathBuf, PathBuf), root: &Path) -> bool {
    let verified = cairn(
        home,
        &[
            "verify",
            signed.0.to_str().unwrap(),
            "--bundle",
            signed.1.to_str().unwrap(),
            "--cert-identity",
            "alice@example.com",
            "--cert-oidc-issuer",
            issuer,
            "--trust-root",
            root.to_str().unwrap(),
        ],
    );
    if !verified.status.success() {
        eprintln!("{}: {}", signed.1.display(), text(&verified));
    }
    verified.status.success()
}

/// The tests here run one dev cluster at a time: started at once, two would pick the same free
/// ports (`dev_process::free_base_port`, spread by process id).
static ONE_CLUSTER: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_cluster() -> std::sync::MutexGuard<'static, ()> {
    ONE_CLUSTER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A dev cluster in `cluster`, with the client in `home` logged in to its dev issuer as
/// alice@example.com; the cluster and the issuer's URL.
fn start_logged_in(cluster: &Path, home: &Path) -> (Dev, String) {
    let dev = Dev::start(cluster);
    let issuer = dev.issuer();
    let login = cairn(
        home,
        &[
            "login",
            "--dev",
            "alice@example.com",
            "--dev-issuer",
            &issuer,
        ],
    );
    assert!(login.status.success(), "{}", text(&login));
    (dev, issuer)
}

#[test]
fn the_ca_sct_key_and_tsa_rotate_at_from_and_old_bundles_stay_verifiable() {
    let _one = one_cluster();
    let temp = tempfile::tempdir().unwrap();
    let cluster = temp.path().join("cluster");
    let home = temp.path().join("home");
    let (dev, issuer) = start_logged_in(&cluster, &home);
    let before = sign(&home, temp.path(), &dev.url(1), "before.txt");

    // The next material, taking over in 30 s: time for the restart and the checks below.
    let prepared_at = unix_seconds();
    let prepared = Command::new(NODE_BIN)
        .args(["ca", "prepare", "--dir", cluster.to_str().unwrap()])
        .args(["--in", "30"])
        .output()
        .unwrap();
    assert!(prepared.status.success(), "{}", text(&prepared));
    for file in ["ca-2/intermediate.crt", "keys/ct-2.key", "tsa-2/signer.key"] {
        assert!(cluster.join(file).exists(), "{file}: {}", text(&prepared));
    }
    let config = std::fs::read_to_string(cluster.join("node-1/config.toml")).unwrap();
    assert!(
        config.contains("[ca.next]") && config.contains("[ca.tsa.next]"),
        "{config}"
    );
    // A second preparation is refused while one is configured.
    let again = Command::new(NODE_BIN)
        .args(["ca", "prepare", "--dir", cluster.to_str().unwrap()])
        .args(["--in", "60"])
        .output()
        .unwrap();
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("one rotation is prepared at a time"));

    dev.0.stop();
    let dev = Dev::start(&cluster);
    let root_json = get_json(&format!("{}/trust/trusted_root.json", dev.url(0)));
    let from = config
        .lines()
        .find_map(|line| line.strip_prefix("from = "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let from_seconds = node::config::parse_utc_ms(&from).unwrap() / 1000;
    assert!(from_seconds >= prepared_at + 29, "{from}");
    // Both of each, the old one's window ending at `from` (the intermediate's a
    // certificate's lifetime later), the new one's starting there; before `from`.
    let cas = root_json["certificateAuthorities"].as_array().unwrap();
    let ctlogs = root_json["ctlogs"].as_array().unwrap();
    let tsas = root_json["timestampAuthorities"].as_array().unwrap();
    assert_eq!(
        (cas.len(), ctlogs.len(), tsas.len()),
        (2, 2, 2),
        "{root_json}"
    );
    let end_of_old_certificates = node::config::format_utc((from_seconds + 20 * 60) * 1000);
    assert_eq!(
        cas[0]["validFor"]["end"].as_str(),
        end_of_old_certificates.as_deref()
    );
    assert_eq!(cas[1]["validFor"]["start"], from.as_str());
    assert_eq!(cas[1]["validFor"].get("end"), None);
    for pair in [ctlogs, tsas] {
        let windows: Vec<_> = pair
            .iter()
            .map(|entry| {
                let window = entry
                    .get("validFor")
                    .unwrap_or(&entry["publicKey"]["validFor"]);
                (window["start"].clone(), window.get("end").cloned())
            })
            .collect();
        assert_eq!(windows[0].1, Some(serde_json::json!(from)), "{windows:?}");
        assert_eq!(windows[1], (serde_json::json!(from), None), "{windows:?}");
    }
    assert_ne!(ctlogs[0]["logId"], ctlogs[1]["logId"]);
    assert!(
        unix_seconds() < from_seconds,
        "the restart took past `from`"
    );
    let bundle = get_json(&format!("{}/api/v2/trustBundle", dev.url(2)));
    assert_eq!(bundle["chains"].as_array().unwrap().len(), 2);
    let root = temp.path().join("trusted_root.json");
    std::fs::write(&root, serde_json::to_vec_pretty(&root_json).unwrap()).unwrap();

    // Past `from` by the nodes' clocks (the same machine's): the new keys sign.
    while unix_seconds() <= from_seconds {
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = sign(&home, temp.path(), &dev.url(2), "after.txt");

    // A trusted root with only the new CA, SCT key and TSA verifies the new bundle alone; one
    // with only the old ones the old bundle alone; the full one both.
    let only = |which: usize| root_with_only(&root_json, which, temp.path());
    let (old_only, new_only) = (only(0), only(1));
    assert!(verifies(&home, &issuer, &after, &new_only));
    assert!(!verifies(&home, &issuer, &before, &new_only));
    assert!(verifies(&home, &issuer, &before, &old_only));
    assert!(!verifies(&home, &issuer, &after, &old_only));
    assert!(verifies(&home, &issuer, &before, &root));
    assert!(verifies(&home, &issuer, &after, &root));
}

/// `cairn-node ca <args> --dir cluster`.
fn ca_command(cluster: &Path, args: &[&str]) -> std::process::Output {
    Command::new(NODE_BIN)
        .arg("ca")
        .args(args)
        .args(["--dir", cluster.to_str().unwrap()])
        .output()
        .unwrap()
}

/// Prepares a rotation taking over in `seconds`; its `from`, in unix seconds.
fn prepare_in(cluster: &Path, seconds: u64) -> u64 {
    let prepared = ca_command(cluster, &["prepare", "--in", &seconds.to_string()]);
    assert!(prepared.status.success(), "{}", text(&prepared));
    let file = node::config::NodeFile::load(&cluster.join("node-1/config.toml")).unwrap();
    let from = &file.ca.unwrap().next.unwrap().from;
    node::config::parse_utc_ms(from).unwrap() / 1000
}

/// A window's start and end as written in the trusted root.
fn window_of(entry: &serde_json::Value) -> (String, Option<String>) {
    let window = entry
        .get("validFor")
        .unwrap_or(&entry["publicKey"]["validFor"]);
    (
        window["start"].as_str().unwrap().to_owned(),
        window
            .get("end")
            .map(|end| end.as_str().unwrap().to_owned()),
    )
}

fn utc(unix_seconds: u64) -> String {
    node::config::format_utc(unix_seconds * 1000).unwrap()
}

#[test]
fn promoted_rotations_keep_retired_cas_listed_and_their_bundles_verifiable() {
    let _one = one_cluster();
    let temp = tempfile::tempdir().unwrap();
    let cluster = temp.path().join("cluster");
    let home = temp.path().join("home");
    let (dev, issuer) = start_logged_in(&cluster, &home);
    let first = sign(&home, temp.path(), &dev.url(0), "first.txt");
    dev.0.stop();

    // First rotation. Promoting before `from` is refused, with nothing changed.
    let from_1 = prepare_in(&cluster, 2);
    let config_path = cluster.join("node-1/config.toml");
    let prepared_config = std::fs::read_to_string(&config_path).unwrap();
    let early = ca_command(&cluster, &["promote"]);
    assert!(!early.status.success(), "{}", text(&early));
    assert!(text(&early).contains("promote after"), "{}", text(&early));
    assert_eq!(
        std::fs::read_to_string(&config_path).unwrap(),
        prepared_config
    );
    while unix_seconds() <= from_1 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let promoted = ca_command(&cluster, &["promote"]);
    assert!(promoted.status.success(), "{}", text(&promoted));
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(
        config.contains("[[ca.retired]]") && config.contains("[[ca.tsa.retired]]"),
        "{config}"
    );
    assert!(!config.contains("[ca.next]"), "{config}");
    // The retired material by its public parts only: no config names its private keys.
    for private in ["ca/intermediate.key", "keys/ct.key", "tsa/signer.key"] {
        assert!(!config.contains(private), "{private}: {config}");
        assert!(text(&promoted).contains(private), "{}", text(&promoted));
    }
    assert!(cluster.join("keys/ct.pub").exists());

    // The second CA signs; then a second rotation, prepared now that the first is promoted.
    let dev = Dev::start(&cluster);
    let second = sign(&home, temp.path(), &dev.url(1), "second.txt");
    dev.0.stop();
    let from_2 = prepare_in(&cluster, 2);
    while unix_seconds() <= from_2 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let promoted = ca_command(&cluster, &["promote"]);
    assert!(promoted.status.success(), "{}", text(&promoted));
    let again = ca_command(&cluster, &["promote"]);
    assert!(!again.status.success(), "{}", text(&again));

    let dev = Dev::start(&cluster);
    let third = sign(&home, temp.path(), &dev.url(2), "third.txt");
    let root_json = get_json(&format!("{}/trust/trusted_root.json", dev.url(0)));
    let file = node::config::NodeFile::load(&config_path).unwrap();
    let ca = file.ca.unwrap();
    let start = ca.retired[0].from.clone();
    assert_eq!(
        ca.retired
            .iter()
            .map(|retired| (retired.from.clone(), retired.until.clone()))
            .collect::<Vec<_>>(),
        [(start.clone(), utc(from_1)), (utc(from_1), utc(from_2))]
    );

    // Three of each, oldest first: a CA's window a leaf certificate's lifetime (20 minutes)
    // past its `until`, an SCT key's and a TSA's ending there.
    let list = |name: &str| -> Vec<(String, Option<String>)> {
        root_json[name]
            .as_array()
            .unwrap()
            .iter()
            .map(window_of)
            .collect()
    };
    assert_eq!(
        list("certificateAuthorities"),
        [
            (start.clone(), Some(utc(from_1 + 20 * 60))),
            (utc(from_1), Some(utc(from_2 + 20 * 60))),
            (utc(from_2), None),
        ],
        "{root_json}"
    );
    let tsa_start = ca.tsa.unwrap().retired[0].from.clone();
    for (name, start) in [
        ("ctlogs", start.clone()),
        ("timestampAuthorities", tsa_start),
    ] {
        assert_eq!(
            list(name),
            [
                (start, Some(utc(from_1))),
                (utc(from_1), Some(utc(from_2))),
                (utc(from_2), None),
            ],
            "{name}: {root_json}"
        );
    }
    // The deployment (its logs' keys, its services) still starts with the first CA.
    assert_eq!(
        root_json["tlogs"][0]["publicKey"]["validFor"]["start"],
        start.as_str()
    );
    let bundle = get_json(&format!("{}/api/v2/trustBundle", dev.url(1)));
    assert_eq!(bundle["chains"].as_array().unwrap().len(), 3);

    let root = temp.path().join("trusted_root.json");
    std::fs::write(&root, serde_json::to_vec_pretty(&root_json).unwrap()).unwrap();
    for signed in [&first, &second, &third] {
        assert!(
            verifies(&home, &issuer, signed, &root),
            "{}",
            signed.1.display()
        );
    }
    // Each bundle verifies against its own CA's entries alone: the first against the first
    // CA, SCT key and TSA, retired twice, and not against the current ones.
    let only = |which: usize| root_with_only(&root_json, which, temp.path());
    assert!(verifies(&home, &issuer, &first, &only(0)));
    assert!(!verifies(&home, &issuer, &first, &only(2)));
    assert!(verifies(&home, &issuer, &third, &only(2)));
}

/// A copy of the trusted root `root_json` with only the `which`-th CA, SCT key and TSA,
/// written into `dir`.
fn root_with_only(root_json: &serde_json::Value, which: usize, dir: &Path) -> PathBuf {
    let mut only = root_json.clone();
    for list in ["certificateAuthorities", "ctlogs", "timestampAuthorities"] {
        let entry = only[list][which].clone();
        only[list] = serde_json::json!([entry]);
    }
    let path = dir.join(format!("only-{which}.json"));
    std::fs::write(&path, serde_json::to_vec(&only).unwrap()).unwrap();
    path
}
