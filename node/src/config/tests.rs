//! Tests of the configuration file: parsing, defaults, relative paths, and the cluster
//! material `init` writes.

use super::*;

pub(super) fn sample(dir: &Path) -> NodeFile {
    NodeFile {
        id: 1,
        listen: "127.0.0.1:7001".parse().unwrap(),
        api_url: "http://127.0.0.1:7001".into(),
        cluster_listen: "127.0.0.1:7101".parse().unwrap(),
        cluster_url: "https://127.0.0.1:7101".into(),
        cluster_ca_file: "../cluster-ca/ca.crt".into(),
        cluster_cert_file: "node.crt".into(),
        cluster_key_file: "node.key".into(),
        data_dir: "data".into(),
        admin_token_file: "../admin-token".into(),
        logs: vec![LogFile {
            name: "artifacts".into(),
            origin: "cairn.localhost/artifacts".into(),
            key_file: dir.join("artifacts.key"),
            succeeds: None,
        }],
        sequencer: SequencerFile::default(),
        raft: RaftFile::default(),
        http: HttpFile::default(),
        ca: None,
        witnessing: None,
    }
}

#[test]
fn round_trips_and_resolves_relative_paths() {
    let dir = std::env::temp_dir().join(format!("cairn-config-{}", std::process::id()));
    let path = dir.join("node-1/config.toml");
    sample(&dir).save(&path).unwrap();
    let loaded = NodeFile::load(&path).unwrap();
    assert_eq!(loaded.data_dir, dir.join("node-1/data"));
    assert_eq!(loaded.cluster_cert_file, dir.join("node-1/node.crt"));
    assert_eq!(loaded.id, 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn mistakes_are_named() {
    let dir = std::env::temp_dir().join(format!("cairn-config-bad-{}", std::process::id()));
    let path = dir.join("config.toml");
    let mut bad = sample(&dir);
    bad.logs[0].origin = "has space".into();
    bad.save(&path).unwrap();
    let error = NodeFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("logs[0].origin"), "{error}");
    let mut bad = sample(&dir);
    bad.cluster_url = "http://127.0.0.1:7101".into();
    bad.save(&path).unwrap();
    let error = NodeFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("cluster_url"), "{error}");
    let mut bad = sample(&dir);
    bad.http.writes_burst = 0;
    bad.save(&path).unwrap();
    let error = NodeFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("http.writes_burst"), "{error}");
    let mut bad = sample(&dir);
    bad.http.trusted_proxies = vec!["10.0.0.0/40".into()];
    bad.save(&path).unwrap();
    let error = NodeFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("http.trusted_proxies"), "{error}");
    let mut bad = sample(&dir);
    bad.http.tls = Some(PublicTlsFile {
        cert_file: "missing.crt".into(),
        key_file: "missing.key".into(),
    });
    bad.save(&path).unwrap();
    let error = NodeFile::load(&path).unwrap().public_options().unwrap_err();
    assert!(error.to_string().contains("missing.crt"), "{error}");
    let mut bad = sample(&dir);
    bad.http.connections_max = 0;
    bad.save(&path).unwrap();
    let error = NodeFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("http"), "{error}");
    let mut bad = sample(&dir);
    bad.ca = Some(CaFile {
        root_cert_file: "root.crt".into(),
        intermediate_cert_file: "intermediate.crt".into(),
        intermediate_key_file: "intermediate.key".into(),
        ct_key_file: "ct.key".into(),
        log: "artifacts".into(),
        requests_per_identity_per_minute: 60,
        issuers: Vec::new(),
        tsa: None,
        next: Some(CaNextFile {
            from: "2026-12-08 00:00:00".into(),
            root_cert_file: "root-2.crt".into(),
            intermediate_cert_file: "intermediate-2.crt".into(),
            intermediate_key_file: "intermediate-2.key".into(),
            ct_key_file: "ct-2.key".into(),
        }),
        retired: Vec::new(),
    });
    bad.save(&path).unwrap();
    let error = NodeFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("ca.next.from"), "{error}");
    write_file(
        &path,
        b"id = 1\nlisten = \"127.0.0.1:1\"\nunknown_setting = 3\n",
    )
    .unwrap();
    let error = NodeFile::load(&path).unwrap_err().to_string();
    assert!(error.contains("unknown"), "{error}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn from_times_are_rfc3339_utc() {
    assert_eq!(parse_utc_ms("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_utc_ms("2026-12-08T00:00:01.5Z"),
        Some(1_796_688_001_500)
    );
    assert_eq!(
        format_utc(1_796_688_001_500).as_deref(),
        Some("2026-12-08T00:00:01Z")
    );
    for bad in [
        "",
        "2026-12-08",
        "2026-12-08T00:00:00+01:00",
        "2026-13-08T00:00:00Z",
        "2026-12-08T24:00:00Z",
        "2026-12-08T00:00:00.Z",
        "2026-12-08T00:00:00.x1Z",
        "1969-12-31T23:59:59Z",
    ] {
        assert_eq!(parse_utc_ms(bad), None, "{bad}");
    }
}
