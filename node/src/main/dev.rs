//! `cairn-node dev`: a local cluster in one command. Provisions a directory (`init` with the
//! insecure development OIDC issuer allow-listed), starts the issuer in this process and each
//! node as a `cairn-node run` child process, forms the cluster through the admin API, writes
//! `cluster.json` and the trusted root, and stops the nodes on Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use node::config::{write_file, write_secret};
use node::dev_process::LocalCluster;
use node::env::SystemClock;
use node::network::http_client;
use node::process::LogFormat;
use node::provision::{DEV_ORIGIN_DOMAIN, LOG_NAMES, init, random_bytes};

use node::process::{bind, shutdown_signal};

/// `cairn-node dev`'s arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct DevArgs {
    /// How many nodes (1, 3 or 5 make sense: Raft needs a majority).
    #[arg(long, default_value_t = 3)]
    nodes: u16,
    /// Where the cluster keeps its keys, configs and data.
    #[arg(long, default_value = "cairn-dev")]
    dir: PathBuf,
    /// The first node's port; node i serves its API on BASE_PORT + i - 1 and Raft (mutual
    /// TLS) on BASE_PORT + 100 + i - 1.
    #[arg(long, default_value_t = 7001)]
    base_port: u16,
    /// Witness the logs: a C2SP tlog-policy file of `witness`, `group` and `quorum` lines (the
    /// witnesses with their URLs). The cluster adds a `log` line per log, writes the whole
    /// policy to DIR/witness-policy.txt (give it to the witnesses: `cairn witness serve
    /// --policy`), and publishes only checkpoints its quorum cosigned.
    #[arg(long, value_name = "FILE")]
    witness_policy: Option<PathBuf>,
}

pub(crate) async fn dev(args: &DevArgs, log_format: LogFormat) -> anyhow::Result<()> {
    let (nodes, dir, base_port) = (args.nodes, args.dir.as_path(), args.base_port);
    if nodes == 0 || nodes > 9 {
        bail!("--nodes must be 1 to 9");
    }
    let urls: Vec<String> = (0..nodes)
        .map(|i| format!("http://127.0.0.1:{}", u32::from(base_port) + u32::from(i)))
        .collect();
    let cluster_urls: Vec<String> = (0..nodes)
        .map(|i| {
            format!(
                "https://127.0.0.1:{}",
                u32::from(base_port) + 100 + u32::from(i)
            )
        })
        .collect();
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = dir.canonicalize()?;
    // The INSECURE development OIDC issuer: mints a token for any e-mail, loopback only, and
    // allow-listed only in this dev cluster's configs.
    let issuer_port =
        u16::try_from(u32::from(base_port) + 300).context("--base-port + 300 must be a port")?;
    let issuer_url = format!("http://127.0.0.1:{issuer_port}");
    let issuer_listener = bind(SocketAddr::from(([127, 0, 0, 1], issuer_port))).await?;
    let issuer = node::http::dev_issuer::DevIssuer::new(
        issuer_url.clone(),
        dev_issuer_key(&dir)?,
        Arc::new(SystemClock),
    );
    tokio::spawn(node::http::dev_issuer::serve(
        issuer_listener,
        Arc::new(issuer),
        std::future::pending(),
    ));
    let dev_issuer = ca::oidc::IssuerConfig {
        url: issuer_url.clone(),
        client_id: "sigstore".into(),
        kind: ca::identity::IdentityKind::Email,
    };
    let configs = init(
        &dir,
        &urls,
        &cluster_urls,
        DEV_ORIGIN_DOMAIN,
        vec![dev_issuer],
    )?;
    if let Some(witnesses) = &args.witness_policy {
        witness_the_logs(&dir, witnesses, &configs)?;
    }
    let exe = std::env::current_exe().context("finding the cairn-node executable")?;
    let mut cluster = LocalCluster::new(&exe, &dir, &urls, &cluster_urls)?;
    // The nodes write their lines as the supervisor was asked to.
    let format = match log_format {
        LogFormat::Text => "text",
        LogFormat::Json => "json",
    };
    cluster.set_env("CAIRN_LOG_FORMAT", format);
    let result = bring_up(&dir, &mut cluster, &issuer_url).await;
    if let Err(error) = result {
        cluster.stop_all();
        return Err(error);
    }
    shutdown_signal().await;
    println!("stopping {} nodes", cluster.nodes().len());
    cluster.stop_all();
    Ok(())
}

/// Writes DIR/witness-policy.txt (a `log` line per log, then the `witnesses` file's lines) and
/// a `[witnessing]` section naming it into each node's config.
fn witness_the_logs(dir: &Path, witnesses: &Path, configs: &[PathBuf]) -> anyhow::Result<()> {
    let lines = std::fs::read_to_string(witnesses)
        .with_context(|| format!("--witness-policy {}", witnesses.display()))?;
    let mut policy = String::new();
    for name in LOG_NAMES {
        let key = dir.join("keys").join(format!("{name}.key"));
        let text = std::fs::read_to_string(&key).with_context(|| format!("{}", key.display()))?;
        let signer = tlog::keys::Ed25519Signer::from_private_key(text.trim())
            .with_context(|| format!("{}", key.display()))?;
        policy.push_str(&format!("log {}\n", signer.verifier().to_vkey()));
    }
    policy.push_str(&lines);
    tlog::policy::Policy::parse(&policy)
        .with_context(|| format!("--witness-policy {}", witnesses.display()))?;
    let path = dir.join("witness-policy.txt");
    write_file(&path, policy.as_bytes())?;
    for config in configs {
        // As a table, so that the file's relative paths stay relative.
        let mut table: toml::Table = std::fs::read_to_string(config)?.parse()?;
        let mut section = toml::Table::new();
        section.insert(
            "policy_file".into(),
            toml::Value::String(path.display().to_string()),
        );
        table.insert("witnessing".into(), toml::Value::Table(section));
        write_file(config, table.to_string().as_bytes())?;
    }
    Ok(())
}

/// The development issuer's signing key, `DIR/dev-issuer.key`, made on first use.
fn dev_issuer_key(dir: &Path) -> anyhow::Result<p256::ecdsa::SigningKey> {
    use p256::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
    let path = dir.join("dev-issuer.key");
    if let Ok(pem) = std::fs::read_to_string(&path) {
        return p256::ecdsa::SigningKey::from_pkcs8_pem(&pem)
            .with_context(|| format!("{}", path.display()));
    }
    let key = p256::ecdsa::SigningKey::from_slice(&random_bytes::<32>())?;
    let pem = key.to_pkcs8_pem(p256::pkcs8::LineEnding::LF)?;
    write_secret(&path, pem.as_bytes())?;
    Ok(key)
}

async fn bring_up(dir: &Path, cluster: &mut LocalCluster, issuer_url: &str) -> anyhow::Result<()> {
    let voters = u64::try_from(cluster.nodes().len())?;
    // Generous: a node with a large database that was not shut down cleanly checks and
    // repairs it before it answers (its log shows the progress); one that exits fails at once.
    cluster.form(voters, Duration::from_secs(600)).await?;
    let client = http_client();
    let nodes = cluster.nodes();
    let token = cluster.token();
    let logs = get_json(&client, &format!("{}/logs", nodes[0].url)).await?;
    // The Sigstore trust documents, for `cairn verify --trust-root`, `sigstore --trust-config`
    // and `cosign --trusted-root`/`--signing-config`.
    let trust = get_json(
        &client,
        &format!("{}/trust/client_trust_config.json", nodes[0].url),
    )
    .await
    .context("fetching the trust documents")?;
    for (file, document) in [
        ("trusted_root.json", &trust["trustedRoot"]),
        ("signing_config.json", &trust["signingConfig"]),
        ("client_trust_config.json", &trust),
    ] {
        write_file(
            &dir.join(file),
            serde_json::to_string_pretty(document)?.as_bytes(),
        )?;
    }
    let cluster = serde_json::json!({
        "nodes": nodes.iter().map(|node| serde_json::json!({
            "id": node.id,
            "url": node.url,
            "cluster_url": node.cluster_url,
            "pid": cluster.pid(node.id),
            "config": dir.join(format!("node-{}", node.id)).join("config.toml"),
            "log_file": node.log,
        })).collect::<Vec<_>>(),
        "admin_token": token,
        "dev_oidc_issuer": issuer_url,
        "logs": logs["logs"],
        "key_files": LOG_NAMES.iter().map(|name| dir.join("keys").join(format!("{name}.key"))).collect::<Vec<_>>(),
    });
    write_file(
        &dir.join("cluster.json"),
        serde_json::to_string_pretty(&cluster)?.as_bytes(),
    )?;
    println!("cairn dev cluster ready: {} nodes", nodes.len());
    for node in nodes {
        println!(
            "  node {}: {}  (log: {})",
            node.id,
            node.url,
            node.log.display()
        );
    }
    println!(
        "cluster description: {}",
        dir.join("cluster.json").display()
    );
    println!(
        "log explorer (search, entries and proofs verified in your browser): {}/",
        nodes[0].url
    );
    println!(
        "checkpoint of the artifact log: curl {}/api/v2/checkpoint",
        nodes[0].url
    );
    println!(
        "INSECURE dev OIDC issuer (tokens for any e-mail, loopback only): {issuer_url}\n\
         a certificate: TOKEN=$(curl -s -X POST {issuer_url}/token -d email=alice@example.com | jq -r .id_token)\n\
         \x20 then POST {}/api/v2/signingCert with 'Authorization: Bearer $TOKEN' (README: Keyless certificates)",
        nodes[0].url
    );
    println!(
        "Sigstore trust: {} (trusted root), {} (sigstore --trust-config)",
        dir.join("trusted_root.json").display(),
        dir.join("client_trust_config.json").display()
    );
    println!("press Ctrl-C to stop");
    Ok(())
}

/// A public GET of a node's, through the node library's one request helper.
async fn get_json(
    client: &node::network::HttpClient,
    url: &str,
) -> anyhow::Result<serde_json::Value> {
    let (status, body) = node::network::call(
        client,
        "GET",
        url,
        None,
        String::new(),
        Duration::from_secs(20),
    )
    .await
    .map_err(|error| anyhow::anyhow!("GET {error}"))?;
    if !(200..300).contains(&status) {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}
