//! `cairn-node dev`: a local cluster in one command. Provisions a directory (`init` with the
//! insecure development OIDC issuer allow-listed), starts the issuer in this process and each
//! node as a `cairn-node run` child process, forms the cluster through the admin API, writes
//! `cluster.json` and the trusted root, and stops the nodes on Ctrl-C or SIGTERM.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use node::config::{write_file, write_secret};
use node::env::SystemClock;
use node::network::http_client;
use node::provision::{DEV_ORIGIN_DOMAIN, LOG_NAMES, init, random_bytes};

use node::process::{bind, shutdown_signal};

struct DevNode {
    id: u64,
    url: String,
    cluster_url: String,
    child: Child,
    log_path: PathBuf,
}

pub(crate) async fn dev(nodes: u16, dir: &Path, base_port: u16) -> anyhow::Result<()> {
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
    let exe = std::env::current_exe().context("finding the cairn-node executable")?;
    let mut running = Vec::new();
    for (position, config) in configs.iter().enumerate() {
        let id = u64::try_from(position + 1)?;
        let log_path = dir.join(format!("node-{id}")).join("node.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?;
        let child = Command::new(&exe)
            .arg("run")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting node {id}"))?;
        running.push(DevNode {
            id,
            url: urls[position].clone(),
            cluster_url: cluster_urls[position].clone(),
            child,
            log_path,
        });
    }
    let result = bring_up(&dir, &mut running, &issuer_url).await;
    if let Err(error) = result {
        stop(&mut running);
        return Err(error);
    }
    shutdown_signal().await;
    println!("stopping {} nodes", running.len());
    stop(&mut running);
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

async fn bring_up(dir: &Path, nodes: &mut [DevNode], issuer_url: &str) -> anyhow::Result<()> {
    let client = http_client();
    let token = std::fs::read_to_string(dir.join("admin-token"))?
        .trim()
        .to_string();
    for node in nodes.iter_mut() {
        wait_until(
            &client,
            &format!("{}/healthz", node.url),
            Duration::from_secs(30),
            node,
        )
        .await?;
    }
    let status = get_json(&client, &format!("{}/admin/status", nodes[0].url), &token).await?;
    let initialized = status["voters"]
        .as_array()
        .is_some_and(|voters| !voters.is_empty());
    if !initialized {
        let members: BTreeMap<String, serde_json::Value> = nodes
            .iter()
            .map(|node| {
                let address = serde_json::json!({
                    "api_url": node.url,
                    "cluster_url": node.cluster_url,
                });
                (node.id.to_string(), address)
            })
            .collect();
        post_json(
            &client,
            &format!("{}/admin/init", nodes[0].url),
            &token,
            &serde_json::json!({ "members": members }),
        )
        .await
        .context("initialising the cluster")?;
    }
    for node in nodes.iter_mut() {
        wait_until(
            &client,
            &format!("{}/readyz", node.url),
            Duration::from_secs(30),
            node,
        )
        .await?;
    }
    let logs = get_json(&client, &format!("{}/logs", nodes[0].url), "").await?;
    // The Sigstore trust documents, for `cairn verify --trust-root`, `sigstore --trust-config`
    // and `cosign --trusted-root`/`--signing-config`.
    let trust = get_json(
        &client,
        &format!("{}/trust/client_trust_config.json", nodes[0].url),
        "",
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
            "pid": node.child.id(),
            "config": dir.join(format!("node-{}", node.id)).join("config.toml"),
            "log_file": node.log_path,
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
    for node in nodes.iter() {
        println!(
            "  node {}: {}  (log: {})",
            node.id,
            node.url,
            node.log_path.display()
        );
    }
    println!(
        "cluster description: {}",
        dir.join("cluster.json").display()
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

/// Polls `url` until it answers 200, failing early if the node process exits.
async fn wait_until(
    client: &node::network::HttpClient,
    url: &str,
    limit: Duration,
    node: &mut DevNode,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if let Some(status) = node.child.try_wait()? {
            bail!(
                "node {} exited ({status}); see {}",
                node.id,
                node.log_path.display()
            );
        }
        let request = hyper::Request::get(url).body(Full::new(Bytes::new()))?;
        if let Ok(Ok(response)) =
            tokio::time::timeout(Duration::from_secs(2), client.request(request)).await
            && response.status().is_success()
        {
            return Ok(());
        }
        if started.elapsed() > limit {
            bail!(
                "{url} not ready after {limit:?}; see {}",
                node.log_path.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_json(
    client: &node::network::HttpClient,
    url: &str,
    token: &str,
) -> anyhow::Result<serde_json::Value> {
    let request = hyper::Request::get(url)
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("GET {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

async fn post_json(
    client: &node::network::HttpClient,
    url: &str,
    token: &str,
    body: &serde_json::Value,
) -> anyhow::Result<serde_json::Value> {
    let request = hyper::Request::post(url)
        .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(serde_json::to_vec(body)?)))?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("POST {url}"))?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    if !status.is_success() {
        bail!("POST {url}: {status}: {}", String::from_utf8_lossy(&body));
    }
    Ok(serde_json::from_slice(&body)?)
}

/// Asks every node to stop (SIGTERM), then waits for it, killing stragglers after 10 s.
fn stop(nodes: &mut [DevNode]) {
    for node in nodes.iter() {
        if let Ok(pid) = i32::try_from(node.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in nodes.iter_mut() {
        loop {
            match node.child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if Instant::now() > deadline => {
                    let _ = node.child.kill();
                    let _ = node.child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}
