//! `cairn-bench certificates`: keyless CA throughput and latency on a local `cairn-node dev`
//! cluster. Each client holds a token from the dev cluster's development issuer (its own
//! identity) and a CSR, and posts `/api/v2/signingCert` in a closed loop to node i mod n; every
//! 201 is verified (leaf signed by the trust bundle's intermediate, SCT valid under the CT key)
//! before it counts. The per-identity rate limit is switched off for the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::cluster::Cluster;
use crate::stats::{Latencies, LatencySummary, Tally, per_second};

/// The `certificates` subcommand's arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct CertificatesArgs {
    /// Cluster size to start.
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Concurrent clients (comma-separated, one run per value), each with one request in flight.
    #[arg(long, value_delimiter = ',', default_value = "64")]
    clients: Vec<usize>,
    /// Seconds of measurement per run.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before measuring.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// The cairn-node binary. Default: next to this binary, then PATH.
    #[arg(long)]
    node_bin: Option<std::path::PathBuf>,
    /// Write every run's results as JSON to this file.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
    /// Sample the leader's CPU with `perf record` over each measured window (see `appends
    /// --profile`).
    #[arg(long)]
    profile: bool,
}

/// One run's results.
#[derive(Debug, serde::Serialize)]
struct CertificatesRun {
    nodes: usize,
    clients: usize,
    warmup_s: f64,
    measured_s: f64,
    fsync: &'static str,
    /// Certificates issued, logged twice (precertificate and certificate) and checked.
    certificates_per_second: f64,
    verified_certificates: u64,
    latency: LatencySummary,
    errors: Tally,
    profile: Option<crate::profile::Profile>,
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

struct Verifier {
    intermediate_spki: Vec<u8>,
    issuer_key_hash: [u8; 32],
    ct_key: Vec<u8>,
}

impl Verifier {
    /// A client's checks of one answer: the leaf is signed by the intermediate and its SCT
    /// verifies under the CT key.
    fn check(&self, body: &[u8]) -> Result<(), String> {
        let answer: serde_json::Value = serde_json::from_slice(body).map_err(|_| "verify: json")?;
        let pem = answer["signedCertificateEmbeddedSct"]["chain"]["certificates"][0]
            .as_str()
            .ok_or("verify: no chain")?;
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| "verify: pem")?;
        let (_, leaf) =
            x509_parser::parse_x509_certificate(&pem.contents).map_err(|_| "verify: der")?;
        let (_, spki) =
            <x509_parser::x509::SubjectPublicKeyInfo as x509_parser::prelude::FromDer<
                '_,
                x509_parser::error::X509Error,
            >>::from_der(&self.intermediate_spki)
            .map_err(|_| "verify: intermediate")?;
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
            spki.subject_public_key.data.as_ref(),
        )
        .verify(
            leaf.tbs_certificate.as_ref(),
            leaf.signature_value.data.as_ref(),
        )
        .map_err(|_| "verify: leaf signature")?;
        let oid: x509_parser::oid_registry::Oid<'static> = "1.3.6.1.4.1.11129.2.4.2"
            .parse()
            .map_err(|_| "verify: oid")?;
        let extension = leaf
            .get_extension_unique(&oid)
            .ok()
            .flatten()
            .ok_or("verify: no SCT")?;
        let sct = ca::ct::Sct::parse_list_extension(extension.value).map_err(|_| "verify: SCT")?;
        let tbs = ca::cert::tbs_without_sct(&pem.contents).map_err(|_| "verify: tbs")?;
        sct.verify_precert(&self.ct_key, &self.issuer_key_hash, &tbs)
            .map_err(|_| "verify: SCT signature".to_string())
    }
}

async fn get_json(client: &HttpClient, url: &str) -> anyhow::Result<serde_json::Value> {
    let request = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("GET {url}"))?;
    anyhow::ensure!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    let body = response.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

async fn mint(client: &HttpClient, issuer: &str, email: &str) -> anyhow::Result<String> {
    let request = hyper::Request::post(format!("{issuer}/token"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            serde_json::json!({ "email": email }).to_string(),
        )))?;
    let response = client.request(request).await?;
    let body = response.into_body().collect().await?.to_bytes();
    let body: serde_json::Value = serde_json::from_slice(&body)?;
    body["id_token"]
        .as_str()
        .map(str::to_string)
        .context("the dev issuer gave no token")
}

/// Runs the benchmark.
pub(crate) async fn certificates(args: CertificatesArgs) -> anyhow::Result<()> {
    let node_bin = match &args.node_bin {
        Some(path) => path.clone(),
        None => crate::cluster::find_node_binary()?,
    };
    eprintln!(
        "starting {}-node cluster ({})",
        args.nodes,
        node_bin.display()
    );
    let parent = std::env::temp_dir();
    let cluster = tokio::task::block_in_place(|| {
        Cluster::start_with_env(
            &node_bin,
            args.nodes,
            &parent,
            &[("CAIRN_CA_REQUESTS_PER_IDENTITY_PER_MINUTE", "0")],
        )
    })?;
    let result = run(&args, &cluster).await;
    tokio::task::block_in_place(|| drop(cluster));
    result
}

async fn run(args: &CertificatesArgs, cluster: &Cluster) -> anyhow::Result<()> {
    let dir = cluster.data_dir().context("no cluster directory")?;
    let description: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("cluster.json"))?)?;
    let issuer = description["dev_oidc_issuer"]
        .as_str()
        .context("cluster.json has no dev_oidc_issuer")?
        .to_string();
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let bundle = get_json(&client, &format!("{}/api/v2/trustBundle", cluster.urls[0])).await?;
    let ct_log = get_json(&client, &format!("{}/api/v2/ctLog", cluster.urls[0])).await?;
    let intermediate_pem = bundle["chains"][0]["certificates"][0]
        .as_str()
        .context("trust bundle")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(intermediate_pem.as_bytes())?;
    let (_, intermediate) = x509_parser::parse_x509_certificate(&pem.contents)?;
    let intermediate_spki = intermediate.public_key().raw.to_vec();
    let verifier = Arc::new(Verifier {
        issuer_key_hash: <sha2::Sha256 as sha2::Digest>::digest(&intermediate_spki).into(),
        intermediate_spki,
        ct_key: BASE64.decode(ct_log["publicKey"].as_str().context("ctLog")?)?,
    });
    println!(
        "| nodes | clients | certificates/s | p50 ms | p90 ms | p99 ms | max ms | errors |\n\
         |---|---|---|---|---|---|---|---|"
    );
    let mut runs = Vec::new();
    for &clients in &args.clients {
        let mut work = Vec::new();
        for id in 0..clients {
            let token = mint(&client, &issuer, &format!("bench{id}@example.com")).await?;
            let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
            let csr = rcgen::CertificateParams::default()
                .serialize_request(&key)?
                .pem()?;
            let body = serde_json::json!({ "certificateSigningRequest": BASE64.encode(csr) });
            work.push((token, Bytes::from(body.to_string())));
        }
        let start = Instant::now();
        let measure_from = start + Duration::from_secs_f64(args.warmup);
        let end = measure_from + Duration::from_secs_f64(args.duration);
        let live = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for (id, (token, body)) in work.into_iter().enumerate() {
            let url = format!(
                "{}/api/v2/signingCert",
                cluster.urls[id % cluster.urls.len()]
            );
            let (verifier, live) = (Arc::clone(&verifier), Arc::clone(&live));
            tasks.push(tokio::spawn(async move {
                let client: HttpClient =
                    Client::builder(TokioExecutor::new()).build(HttpConnector::new());
                let mut latencies = Latencies::new();
                let mut errors = Tally::default();
                let mut ok = 0u64;
                loop {
                    let sent = Instant::now();
                    if sent >= end {
                        break;
                    }
                    let request = hyper::Request::post(&url)
                        .header("authorization", format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .body(Full::new(body.clone()));
                    let outcome = match request {
                        Ok(request) => match client.request(request).await {
                            Ok(response) => {
                                let status = response.status().as_u16();
                                match response.into_body().collect().await {
                                    Ok(bytes) if status == 201 => verifier.check(&bytes.to_bytes()),
                                    Ok(_) => Err(format!("http {status}")),
                                    Err(_) => Err("transport".into()),
                                }
                            }
                            Err(_) => Err("transport".into()),
                        },
                        Err(_) => Err("request".into()),
                    };
                    let finished = Instant::now();
                    let counted = sent >= measure_from && finished <= end;
                    match outcome {
                        Ok(()) => {
                            live.fetch_add(1, Ordering::Relaxed);
                            if counted {
                                ok += 1;
                                latencies.record(finished - sent);
                            }
                        }
                        Err(kind) => {
                            if counted {
                                errors.add(&kind);
                            }
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (ok, latencies, errors)
            }));
        }
        tokio::time::sleep_until(measure_from).await;
        let recording = if args.profile {
            let metrics = crate::scrape(&cluster.urls).await;
            Some(crate::start_profile(cluster, &metrics, args.duration)?)
        } else {
            None
        };
        let mut ok = 0;
        let mut latencies = Latencies::new();
        let mut errors = Tally::default();
        for task in tasks {
            let (count, more, kinds) = task.await?;
            ok += count;
            latencies.merge(&more);
            errors.merge(&kinds);
        }
        let profile = match recording {
            Some(recording) => Some(tokio::task::block_in_place(|| recording.finish())?),
            None => None,
        };
        let summary = latencies.summary();
        let LatencySummary {
            p50_ms,
            p90_ms,
            p99_ms,
            max_ms,
            ..
        } = summary;
        let errors_text: Vec<String> = errors
            .iter()
            .map(|(kind, count)| format!("{kind}: {count}"))
            .collect();
        println!(
            "| {} | {clients} | {:.0} | {p50_ms:.1} | {p90_ms:.1} | {p99_ms:.1} | {max_ms:.1} | {} |",
            cluster.urls.len(),
            per_second(ok, Duration::from_secs_f64(args.duration)),
            if errors_text.is_empty() {
                "0".to_string()
            } else {
                errors_text.join(", ")
            }
        );
        runs.push(CertificatesRun {
            nodes: cluster.urls.len(),
            clients,
            warmup_s: args.warmup,
            measured_s: args.duration,
            fsync: crate::FSYNC,
            certificates_per_second: per_second(ok, Duration::from_secs_f64(args.duration)),
            verified_certificates: ok,
            latency: summary,
            errors,
            profile,
        });
    }
    if let Some(path) = &args.json {
        let report = serde_json::json!({ "environment": crate::environment(), "runs": runs });
        crate::write_json(path, &report)?;
    }
    Ok(())
}
