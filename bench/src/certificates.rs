//! `cairn-bench certificates`: keyless CA throughput on a `cairn-node dev` cluster (rate limit
//! off). Each client posts its CSR with its own dev-issuer token; every certificate is checked
//! with the `client` library against the cluster's trusted root before it counts.

use std::sync::Arc;

use anyhow::Context as _;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use client::TrustedRoot;
use client::certificate::SigningCertificate;
use client::time::UnixMillis;
use node::env::{Clock as _, SystemClock};

use crate::cluster::Cluster;
use crate::net::{self, Answer};
use crate::run::{self, Context, Done, Failure, RunArgs, Target, Workload};
use crate::stats::per_second;

/// The `certificates` subcommand's arguments.
#[derive(clap::Args, Debug)]
#[command(mut_arg("clients", |arg| arg.default_value("64")))]
#[command(mut_arg("warmup", |arg| arg.default_value("2")))]
pub(crate) struct CertificatesArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// A client's checks of one answer: its certificate chains to a CA of the trusted root and
/// carries one SCT from a trusted CT log.
fn check(root: &TrustedRoot, body: &[u8]) -> Result<(), &'static str> {
    let answer: serde_json::Value = serde_json::from_slice(body).map_err(|_| "verify: json")?;
    let chain = &answer["signedCertificateEmbeddedSct"]["chain"]["certificates"];
    let pem = chain[0].as_str().ok_or("verify: no chain")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|_| "verify: pem")?;
    let leaf = SigningCertificate::parse(&pem.contents).map_err(|_| "verify: der")?;
    let now = UnixMillis(i64::try_from(SystemClock.now_unix_ms()).unwrap_or(i64::MAX));
    let authority =
        (leaf.verify_chain(&root.certificate_authorities, now)).map_err(|_| "verify: chain")?;
    leaf.verify_sct(authority, &root.ctlogs)
        .map_err(|_| "verify: SCT")
}

/// Clients that each hold a token and a CSR and ask for certificates, node i mod n.
struct CertificateLoad {
    root: TrustedRoot,
    urls: Vec<String>,
    issuer: String,
    timeout: std::time::Duration,
}

impl Workload for CertificateLoad {
    /// Its node's signingCert URL, its token and its request.
    type Client = (String, String, Bytes);
    type Answer = Answer;

    async fn prepare(&self, id: usize) -> anyhow::Result<(String, String, Bytes)> {
        let body = serde_json::json!({ "email": format!("bench{id}@example.com") }).to_string();
        let url = format!("{}/token", self.issuer);
        let token = net::request(&url, Some(body), None, self.timeout).await?;
        let token: serde_json::Value = serde_json::from_slice(&token)?;
        let token = token["id_token"]
            .as_str()
            .context("the dev issuer gave no token")?
            .to_string();
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let csr = rcgen::CertificateParams::default()
            .serialize_request(&key)?
            .pem()?;
        let body = serde_json::json!({ "certificateSigningRequest": BASE64.encode(csr) });
        let url = format!("{}/api/v2/signingCert", self.urls[id % self.urls.len()]);
        Ok((url, token, Bytes::from(body.to_string())))
    }

    async fn issue(
        &self,
        (url, token, body): &mut (String, String, Bytes),
        _: usize,
        _: &Context<'_>,
    ) -> Result<Answer, Failure> {
        Ok(net::send(url, Some(body.clone()), Some(token.as_str()), self.timeout).await?)
    }

    fn verify(&self, _: &mut (String, String, Bytes), answer: Answer) -> Result<Done, String> {
        if answer.status != 201 {
            return Err(format!("http {}", answer.status));
        }
        check(&self.root, &answer.body)?;
        Ok(Done::read("certificates"))
    }
}

pub(crate) async fn certificates(args: CertificatesArgs) -> anyhow::Result<()> {
    args.run.check()?;
    let environment = run::environment();
    let env = [("CAIRN_CA_REQUESTS_PER_IDENTITY_PER_MINUTE", "0")];
    let runs = async |cluster: &Cluster| {
        let dev = cluster.process.as_ref().context("no dev issuer")?;
        let root = net::get(&format!("{}/trust/trusted_root.json", cluster.urls[0])).await?;
        let load = Arc::new(CertificateLoad {
            root: TrustedRoot::from_json(&root).context("the cluster's trusted root")?,
            urls: cluster.urls.clone(),
            issuer: dev.issuer(),
            timeout: args.run.timeout(),
        });
        let once = async |clients| {
            let phases = args.run.phases(clients, "certificates");
            let measured = run::measure(&load, &phases, Target::cluster(cluster)).await?;
            let (ok, latencies) = measured.total(|_| true);
            // A certificate counts once issued, logged twice (precertificate and certificate)
            // and checked.
            anyhow::Ok(measured.with(serde_json::json!({
                "nodes": cluster.urls.len(), "fsync": crate::appends::FSYNC,
                "certificates_per_second": per_second(ok, measured.window),
                "verified_certificates": ok, "latency": latencies.summary(),
                "node_usage": measured.processes,
            })))
        };
        args.run.each(COLUMNS, once).await
    };
    let runs = args.run.on_clusters(&env, None, runs).await?;
    let report = serde_json::json!({ "environment": environment, "runs": runs });
    args.run.finish(&report, table, true)
}

/// The columns of the `certificates` table (also the suite report's).
const COLUMNS: &str = "nodes=nodes | clients=clients | certificates/s=certificates_per_second:0 \
    | p50 ms=latency.p50_ms:1 | p90 ms=latency.p90_ms:1 | p99 ms=latency.p99_ms:1 \
    | max ms=latency.max_ms:1 | errors=errors:sum | node CPU %=node_usage:cpu \
    | leader's hottest code=profile:top";

pub(crate) fn table(report: &serde_json::Value) -> String {
    crate::stats::table(COLUMNS, report["runs"].as_array().into_iter().flatten())
}
