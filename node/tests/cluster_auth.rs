//! Only nodes of the cluster reach the Raft endpoints.
//!
//! A real `cairn-node` process, with the material `cairn-node init` wrote. Its cluster listener
//! must refuse a client without a certificate and a client whose certificate comes from another
//! CA (made here with rcgen, with the same names as a real node's), and answer a client holding
//! a node certificate from the cluster CA; its public listener must not serve the Raft endpoints
//! at all.

// Test harness code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use node::dev_process::LocalCluster;
use node::network::http_client;
use node::tls::{ClusterTls, crypto_provider};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

mod common;

use common::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

/// One node process (`node::dev_process`), killed and its directory removed on drop.
struct RunningNode {
    dir: PathBuf,
    api_url: String,
    cluster_url: String,
    process: LocalCluster,
}

impl Drop for RunningNode {
    fn drop(&mut self) {
        self.process.kill_all();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Writes material for two nodes and runs node 1; node 2's certificate serves as a legitimate
/// client's.
async fn start_node() -> RunningNode {
    let dir = std::env::temp_dir().join(format!("cairn-cluster-auth-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let api_urls = [0, 1].map(|_| format!("http://127.0.0.1:{}", free_port()));
    let cluster_urls = [0, 1].map(|_| format!("https://127.0.0.1:{}", free_port()));
    let mut init = Command::new(BIN);
    init.arg("init").arg("--dir").arg(&dir);
    for url in &api_urls {
        init.arg("--node-url").arg(url);
    }
    for url in &cluster_urls {
        init.arg("--cluster-url").arg(url);
    }
    assert!(init.status().unwrap().success(), "cairn-node init failed");
    let mut process = LocalCluster::new(Path::new(BIN), &dir, &api_urls, &cluster_urls).unwrap();
    process.spawn(1).unwrap();
    process
        .wait_for(1, "/healthz", Duration::from_secs(60))
        .await
        .unwrap();
    RunningNode {
        dir,
        api_url: api_urls[0].clone(),
        cluster_url: cluster_urls[0].clone(),
        process,
    }
}

/// The cluster CA as a root store: a client that trusts the node, whatever it presents.
fn cluster_roots(dir: &Path) -> Arc<RootCertStore> {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("cluster-ca/ca.crt")).unwrap())
        .unwrap();
    Arc::new(roots)
}

fn client_builder() -> rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier> {
    ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
}

/// POSTs an (empty, so undecodable) vote to the cluster listener with `tls`: the HTTP status if
/// an HTTP answer came back, the transport error otherwise.
async fn post_vote(node: &RunningNode, tls: ClientConfig) -> Result<u16, String> {
    post_vote_in_format(node, tls, None)
        .await
        .map(|(status, _)| status)
}

/// As [`post_vote`], naming Raft format `format` (if any); also returns the body.
async fn post_vote_in_format(
    node: &RunningNode,
    tls: ClientConfig,
    format: Option<u32>,
) -> Result<(u16, String), String> {
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .wrap_connector(tcp);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
    let mut request = hyper::Request::post(format!("{}/internal/raft/vote", node.cluster_url));
    if let Some(format) = format {
        request = request.header(node::network::RAFT_FORMAT_HEADER, format);
    }
    let request = request.body(Full::new(Bytes::new())).unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|error| format!("{error:?}"))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| error.to_string())?;
    Ok((
        status,
        String::from_utf8_lossy(&body.to_bytes()).into_owned(),
    ))
}

/// Whether a request was refused at the TLS layer: an error, and if the client got to read the
/// server's alert, the expected one. In TLS 1.3 the client sends its certificate and then its
/// request before the server's verdict arrives, so on a loaded machine the refusal sometimes
/// shows as a closed or reset connection instead of the alert. A refused connection attempt or
/// a timeout does not count: the same port has just served a member.
fn refused_with(result: &Result<u16, String>, alert: &str) -> bool {
    match result {
        Ok(_) => false,
        Err(error) if error.contains("AlertReceived") => error.contains(alert),
        Err(error) => !(error.contains("ConnectionRefused") || error.contains("timed out")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_cluster_certificates_reach_the_raft_endpoints() {
    let node = start_node().await;

    // A node of the cluster gets through to the handler, which rejects the empty body: 400 is
    // the proof that TLS and routing let it in.
    let member = ClusterTls::load(
        &node.dir.join("cluster-ca/ca.crt"),
        &node.dir.join("node-2/node.crt"),
        &node.dir.join("node-2/node.key"),
    )
    .unwrap();
    let member_config = ClientConfig::clone(&member.client_config());
    assert_eq!(post_vote(&node, member_config.clone()).await, Ok(400));
    // A member in a newer Raft format than this node reads is refused before its message is
    // decoded, with an error that says so; the current format gets to the decoder.
    let (status, body) = post_vote_in_format(
        &node,
        member_config.clone(),
        Some(node::types::RAFT_FORMAT + 1),
    )
    .await
    .unwrap();
    assert_eq!(status, 400);
    assert!(
        body.contains("newer_raft_format") && body.contains("upgrade"),
        "{body}"
    );
    let (_, body) = post_vote_in_format(&node, member_config, Some(node::types::RAFT_FORMAT))
        .await
        .unwrap();
    assert!(body.contains("bad_raft_message"), "{body}");

    // No client certificate: refused during the handshake (in TLS 1.3 the client learns it
    // from the server's alert on its first read).
    let anonymous = client_builder()
        .with_root_certificates(cluster_roots(&node.dir))
        .with_no_client_auth();
    // The alert names the reason, which tells a TLS refusal from, say, a closed port.
    let refused = post_vote(&node, anonymous).await;
    assert!(
        refused_with(&refused, "CertificateRequired"),
        "anonymous client got {refused:?}"
    );

    // A certificate from another CA, with the very names a node's certificate has.
    let other_ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "Cairn cluster CA");
    let other_ca = rcgen::Issuer::new(ca_params, other_ca_key);
    let stranger_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut stranger_params = rcgen::CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "node-2.cairn.cluster".to_string(),
    ])
    .unwrap();
    stranger_params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let stranger_cert = stranger_params.signed_by(&stranger_key, &other_ca).unwrap();
    let stranger = client_builder()
        .with_root_certificates(cluster_roots(&node.dir))
        .with_client_auth_cert(
            vec![stranger_cert.der().clone()],
            PrivateKeyDer::from_pem_slice(stranger_key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let refused = post_vote(&node, stranger).await;
    assert!(
        refused_with(&refused, "UnknownCA"),
        "client of another CA got {refused:?}"
    );

    // Plain HTTP to the cluster port gets no HTTP answer.
    let plain_url = node.cluster_url.replace("https://", "http://");
    let request = hyper::Request::post(format!("{plain_url}/internal/raft/vote"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let plain = tokio::time::timeout(Duration::from_secs(10), http_client().request(request))
        .await
        .unwrap();
    assert!(
        plain.is_err(),
        "plain HTTP on the cluster port got {plain:?}"
    );

    // The public listener does not serve the Raft endpoints at all.
    for method in ["POST", "GET"] {
        let request = hyper::Request::builder()
            .method(method)
            .uri(format!("{}/internal/raft/vote", node.api_url))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response = http_client().request(request).await.unwrap();
        assert_eq!(response.status(), 404, "{method} on the public port");
    }

    // The member still gets through after all that: the refusals did not wedge the listener.
    let member_config = ClientConfig::clone(&member.client_config());
    assert_eq!(post_vote(&node, member_config).await, Ok(400));
}
