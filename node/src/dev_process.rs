//! Real node processes on this machine: the one harness of the `dev` supervisor, the tests and
//! the bench.
//! - [`LocalCluster`]: `cairn-node run` processes over a cluster directory, started, killed and
//!   stopped one by one and formed through the admin API. `cairn-node dev` runs its nodes with
//!   it; so do the tests that crash and restart nodes.
//! - [`DevProcess`]: a whole `cairn-node dev` (nodes, CA, development OIDC issuer), ready when
//!   it returns and stopped with SIGTERM when dropped, so the supervisor stops its nodes.
//!
//! It manages operating-system processes, so it waits on the operating system's clock; no
//! replica code calls it, and the simulator never does.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Offsets from the base port that a dev cluster of up to three nodes binds: APIs, cluster
/// listeners, and the issuer.
const PORT_OFFSETS: [u16; 7] = [0, 1, 2, 100, 101, 102, 300];
/// The file the supervisor writes last, once every node is ready and the trust documents are
/// written.
const READY_FILE: &str = "cluster.json";

/// Why a dev cluster did not come up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevError {
    /// The process could not be started, or its log not created.
    #[error("starting {program}: {source}")]
    Spawn {
        /// The binary.
        program: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The supervisor exited before the cluster was ready.
    #[error("cairn-node dev exited ({status}) before the cluster was ready; see {log}")]
    Exited {
        /// How it exited.
        status: std::process::ExitStatus,
        /// Its log.
        log: String,
    },
    /// The cluster was not ready in time.
    #[error("the dev cluster was not ready within {seconds} s; see {log}")]
    Timeout {
        /// The wait.
        seconds: u64,
        /// The supervisor's log.
        log: String,
    },
    /// `cluster.json` could not be read.
    #[error("reading {path}: {message}")]
    ClusterJson {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// How to start a dev cluster.
#[derive(Clone, Debug)]
pub struct DevOptions {
    /// The `cairn-node` binary.
    pub binary: PathBuf,
    /// The cluster's directory (created, or resumed if it holds a cluster).
    pub dir: PathBuf,
    /// How many nodes.
    pub nodes: u16,
    /// The base port; [`free_base_port`] finds one.
    pub base_port: u16,
    /// Environment variables for the supervisor and the nodes it starts (`CAIRN_*` overrides).
    pub env: Vec<(String, String)>,
    /// Witness the logs with these witnesses (`cairn-node dev --witness-policy`).
    pub witness_policy: Option<PathBuf>,
    /// Where the supervisor's own output goes.
    pub log: PathBuf,
    /// The longest wait for the cluster to be ready.
    pub ready_within: Duration,
}

impl DevOptions {
    /// `nodes` nodes in `dir` on a free base port, the supervisor's log next to `dir`, ready
    /// within 90 s.
    pub fn new(binary: &Path, dir: &Path, nodes: u16) -> DevOptions {
        DevOptions {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            nodes,
            base_port: free_base_port(nodes).unwrap_or(20_000),
            env: Vec::new(),
            witness_policy: None,
            log: dir.with_extension("dev.log"),
            ready_within: Duration::from_secs(90),
        }
    }
}

/// A running `cairn-node dev`.
#[derive(Debug)]
pub struct DevProcess {
    child: Child,
    options: DevOptions,
    /// Set once stopped, so the pid (maybe reused by then) is never signalled again.
    stopped: bool,
}

impl DevProcess {
    /// Starts the supervisor (creating the cluster in `options.dir`, or resuming the one it
    /// holds) and waits until the cluster is ready.
    pub fn start(options: DevOptions) -> Result<DevProcess, DevError> {
        let spawn_error = |source| DevError::Spawn {
            program: options.binary.clone(),
            source,
        };
        // A resumed cluster's old description names processes that are gone.
        let ready = options.dir.join(READY_FILE);
        let _ = std::fs::remove_file(&ready);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&options.log)
            .map_err(spawn_error)?;
        let mut command = Command::new(&options.binary);
        command
            .arg("dev")
            .arg("--nodes")
            .arg(options.nodes.to_string())
            .arg("--base-port")
            .arg(options.base_port.to_string())
            .arg("--dir")
            .arg(&options.dir);
        if let Some(policy) = &options.witness_policy {
            command.arg("--witness-policy").arg(policy);
        }
        let child = command
            .envs(options.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(spawn_error)?;
        // Dropped (and so stopped) if the wait below fails.
        let mut dev = DevProcess {
            child,
            options,
            stopped: false,
        };
        let started = Instant::now();
        // Written in one call, but a read racing the write sees a short file: ready once it
        // parses.
        while dev.cluster_json().is_err() {
            if let Ok(Some(status)) = dev.child.try_wait() {
                return Err(DevError::Exited {
                    status,
                    log: dev.options.log.display().to_string(),
                });
            }
            if started.elapsed() > dev.options.ready_within {
                return Err(DevError::Timeout {
                    seconds: dev.options.ready_within.as_secs(),
                    log: dev.options.log.display().to_string(),
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(dev)
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.options.dir
    }

    /// Node `index`'s (0-based) public URL.
    pub fn url(&self, index: u16) -> String {
        format!("http://127.0.0.1:{}", self.options.base_port + index)
    }

    /// The development OIDC issuer's URL.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.options.base_port + 300)
    }

    /// The supervisor's description of the cluster (`cluster.json`: node URLs and process
    /// ids, the admin token, each log's origin and verifier key).
    pub fn cluster_json(&self) -> Result<serde_json::Value, DevError> {
        read_cluster_json(&self.options.dir.join(READY_FILE))
    }

    /// Stops the cluster: SIGTERM to the supervisor, which stops its nodes; killed if it has
    /// not exited after 15 s.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        crate::process::stop_children(vec![&mut self.child], Duration::from_secs(15));
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// A `cairn-node dev` supervisor's description of its cluster, read from `path` (a
/// `cluster.json`).
pub fn read_cluster_json(path: &Path) -> Result<serde_json::Value, DevError> {
    let failed = |message: String| DevError::ClusterJson {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|error| failed(error.to_string()))?;
    serde_json::from_str(&text).map_err(|error| failed(error.to_string()))
}

/// A base port whose node, cluster and issuer ports are free for `nodes` nodes, spread by
/// process id so that parallel test processes rarely collide.
pub fn free_base_port(nodes: u16) -> Option<u16> {
    let start = 20_000 + u16::try_from(std::process::id() % 300).unwrap_or(0) * 40;
    (0..200u16)
        .map(|step| 20_000 + (start - 20_000 + step * 11) % 9_000)
        .find(|&base| {
            PORT_OFFSETS
                .iter()
                .chain(&[nodes.saturating_sub(1), 100 + nodes.saturating_sub(1)])
                .all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok())
        })
}

/// One node of a [`LocalCluster`]: its addresses and files.
#[derive(Clone, Debug)]
pub struct LocalNode {
    /// Its id (1, 2, ...).
    pub id: u64,
    /// Its public API.
    pub url: String,
    /// Its cluster listener (Raft over mutual TLS).
    pub cluster_url: String,
    /// Its configuration file.
    pub config: PathBuf,
    /// Where its output is appended.
    pub log: PathBuf,
}

/// Why a node process of a [`LocalCluster`] misbehaved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LocalError {
    /// The cluster directory's admin token could not be read.
    #[error("reading {path}: {source}")]
    Token {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A process could not be started, or its log opened.
    #[error("starting node {id}: {source}")]
    Spawn {
        /// The node.
        id: u64,
        /// Why.
        source: std::io::Error,
    },
    /// A node exited while it was awaited.
    #[error("node {id} exited ({status}); see {log}")]
    Exited {
        /// The node.
        id: u64,
        /// How.
        status: std::process::ExitStatus,
        /// Its log.
        log: String,
    },
    /// A node did not become healthy or ready in time.
    #[error("{url} not ready after {seconds} s; see {log}")]
    NotReady {
        /// What was polled.
        url: String,
        /// The wait.
        seconds: u64,
        /// The node's log.
        log: String,
    },
    /// The admin API refused or failed a request.
    #[error("{0}")]
    Admin(String),
}

/// Real `cairn-node run` processes over one cluster directory (as `cairn-node init` or the
/// `dev` supervisor made it): started, killed and stopped one by one, and formed into a
/// cluster through the admin API. The `dev` supervisor runs its nodes with it, and so do the
/// tests that crash and restart nodes.
#[derive(Debug)]
pub struct LocalCluster {
    binary: PathBuf,
    nodes: Vec<LocalNode>,
    running: std::collections::BTreeMap<u64, Child>,
    /// Environment variables of every node started (`CAIRN_*` overrides, `RUST_LOG`).
    env: Vec<(String, String)>,
    token: String,
    http: crate::network::HttpClient,
}

impl LocalCluster {
    /// The nodes of the cluster directory `dir` (`node-N/config.toml`, node N at position
    /// N - 1 of `urls` and `cluster_urls`), run with `binary`; starts nothing.
    pub fn new(
        binary: &Path,
        dir: &Path,
        urls: &[String],
        cluster_urls: &[String],
    ) -> Result<LocalCluster, LocalError> {
        let token_file = dir.join("admin-token");
        let token = std::fs::read_to_string(&token_file)
            .map_err(|source| LocalError::Token {
                path: token_file,
                source,
            })?
            .trim()
            .to_owned();
        let nodes = urls
            .iter()
            .zip(cluster_urls)
            .zip(1u64..)
            .map(|((url, cluster_url), id)| LocalNode {
                id,
                url: url.clone(),
                cluster_url: cluster_url.clone(),
                config: dir.join(format!("node-{id}")).join("config.toml"),
                log: dir.join(format!("node-{id}")).join("node.log"),
            })
            .collect();
        // Every client of a local cluster is on loopback, one address: the limits per client
        // address are off unless this process's environment sets them or `set_env` does.
        let env = ["CAIRN_WRITES_PER_MINUTE", "CAIRN_CERTIFICATES_PER_MINUTE"]
            .into_iter()
            .filter(|name| std::env::var_os(name).is_none())
            .map(|name| (name.to_owned(), "0".to_owned()))
            .collect();
        Ok(LocalCluster {
            binary: binary.to_path_buf(),
            nodes,
            running: std::collections::BTreeMap::new(),
            env,
            token,
            http: crate::network::http_client(),
        })
    }

    /// Sets an environment variable for every node started from now on (a later value of the
    /// same variable wins).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// Trusts `certificates` (a private CA's) too when calling the nodes' public APIs: for
    /// nodes whose `api_url` is https with such a certificate.
    pub fn trust(&mut self, certificates: &[rustls::pki_types::CertificateDer<'static>]) {
        self.http = crate::network::http_client_trusting(certificates);
    }

    /// Every node, running or not.
    pub fn nodes(&self) -> &[LocalNode] {
        &self.nodes
    }

    /// The admin token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<u64> {
        self.running.keys().copied().collect()
    }

    /// The process id of node `id`, if it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.running.get(&id).map(Child::id)
    }

    fn node(&self, id: u64) -> Result<&LocalNode, LocalError> {
        self.nodes
            .iter()
            .find(|node| node.id == id)
            .ok_or_else(|| LocalError::Admin(format!("no node {id}")))
    }

    /// Starts node `id` (`cairn-node run --config`), its output appended to its log.
    pub fn spawn(&mut self, id: u64) -> Result<(), LocalError> {
        let node = self.node(id)?.clone();
        let spawn_error = |source| LocalError::Spawn { id, source };
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .map_err(spawn_error)?;
        let child = Command::new(&self.binary)
            .arg("run")
            .arg("--config")
            .arg(&node.config)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(spawn_error)?)
            .stderr(log)
            .spawn()
            .map_err(spawn_error)?;
        self.running.insert(id, child);
        Ok(())
    }

    /// SIGKILL: no shutdown, no flush; only what was fsynced survives.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.running.remove(&id) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills every running node.
    pub fn kill_all(&mut self) {
        for id in self.running() {
            self.kill(id);
        }
    }

    /// Asks every running node to stop (SIGTERM) and waits, killing stragglers after 10 s.
    pub fn stop_all(&mut self) {
        crate::process::stop_children(self.running.values_mut().collect(), Duration::from_secs(10));
        self.running.clear();
    }

    /// Starts nodes 1 to `voters` that are not running, makes them the cluster through node
    /// 1's `/admin/init` unless it already has voters, and waits until each is ready (at most
    /// `within` per wait), failing early if one exits.
    pub async fn form(&mut self, voters: u64, within: Duration) -> Result<(), LocalError> {
        for id in 1..=voters {
            if !self.running.contains_key(&id) {
                self.spawn(id)?;
            }
        }
        for id in 1..=voters {
            self.wait_for(id, "/healthz", within).await?;
        }
        let (_, status) = self.admin("GET", 1, "/admin/status", None).await?;
        let initialized = serde_json::from_slice::<serde_json::Value>(&status)
            .ok()
            .and_then(|status| status["voters"].as_array().map(|voters| !voters.is_empty()))
            .unwrap_or(false);
        if !initialized {
            let members: serde_json::Map<String, serde_json::Value> = self
                .nodes
                .iter()
                .filter(|node| node.id <= voters)
                .map(|node| {
                    let address = serde_json::json!({
                        "api_url": node.url,
                        "cluster_url": node.cluster_url,
                    });
                    (node.id.to_string(), address)
                })
                .collect();
            let body = serde_json::json!({ "members": members }).to_string();
            let (status, answer) = self.admin("POST", 1, "/admin/init", Some(body)).await?;
            if status != 200 {
                return Err(LocalError::Admin(format!(
                    "initialising the cluster: {status}: {}",
                    String::from_utf8_lossy(&answer)
                )));
            }
        }
        for id in 1..=voters {
            self.wait_for(id, "/readyz", within).await?;
        }
        Ok(())
    }

    /// Waits until node `id` answers `path` with 200, failing early if it exits.
    pub async fn wait_for(
        &mut self,
        id: u64,
        path: &str,
        within: Duration,
    ) -> Result<(), LocalError> {
        let node = self.node(id)?.clone();
        // Tokio's clock, like the sleep below.
        let started = tokio::time::Instant::now();
        loop {
            if let Some(child) = self.running.get_mut(&id)
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(LocalError::Exited {
                    id,
                    status,
                    log: node.log.display().to_string(),
                });
            }
            if let Ok((200, _)) = self.admin("GET", id, path, None).await {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(LocalError::NotReady {
                    url: format!("{}{path}", node.url),
                    seconds: within.as_secs(),
                    log: node.log.display().to_string(),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A request to node `id` with the admin token and a JSON `body`: the status and the
    /// body, or why no answer came within 20 s.
    pub async fn admin(
        &self,
        method: &str,
        id: u64,
        path: &str,
        body: Option<String>,
    ) -> Result<(u16, bytes::Bytes), LocalError> {
        let url = format!("{}{path}", self.node(id)?.url);
        crate::network::call(
            &self.http,
            method,
            &url,
            Some(&format!("Bearer {}", self.token)),
            body.unwrap_or_default(),
            Duration::from_secs(20),
        )
        .await
        .map_err(LocalError::Admin)
    }

    /// An admin request to node `id` (a POST of `body` when given) whose answer must be 200:
    /// its JSON.
    pub async fn admin_json(
        &self,
        id: u64,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<serde_json::Value, LocalError> {
        let method = if body.is_some() { "POST" } else { "GET" };
        let body = body.map(|body| body.to_string());
        let (status, answer) = self.admin(method, id, path, body).await?;
        let text = String::from_utf8_lossy(&answer);
        if status != 200 {
            let message = format!("{method} {path} on node {id}: http {status}: {text}");
            return Err(LocalError::Admin(message));
        }
        serde_json::from_slice(&answer)
            .map_err(|error| LocalError::Admin(format!("{method} {path} on node {id}: {error}")))
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        self.kill_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_json_is_read_or_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(READY_FILE);
        let missing = read_cluster_json(&path).unwrap_err();
        assert!(matches!(missing, DevError::ClusterJson { path: named, .. } if named == path));
        std::fs::write(&path, r#"{"nodes": [{"url": "http://127.0.0.1:1"}]}"#).unwrap();
        let json = read_cluster_json(&path).unwrap();
        assert_eq!(json["nodes"][0]["url"], "http://127.0.0.1:1");
        std::fs::write(&path, "{").unwrap();
        assert!(read_cluster_json(&path).is_err());
    }
}
