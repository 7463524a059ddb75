//! A cluster of real `cairn-node` processes on loopback, made by `cairn-node init` in a fresh
//! directory: start, kill and restart nodes, form the cluster, and call the nodes' HTTP APIs
//! with the admin token.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use node::dev_process::LocalCluster;
use node::network::{HttpClient, http_client};

use super::free_port;

const BIN: &str = env!("CARGO_BIN_EXE_cairn-node");

/// How long a node may take to answer a request, and to become healthy or ready.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) struct Cluster {
    /// Everything `cairn-node init` wrote: keys, certificates, `node-N/` with each node's
    /// config.toml, data and node.log. Kept when a test fails.
    pub(crate) dir: PathBuf,
    /// The nodes' HTTP APIs, node N at position N - 1.
    pub(crate) urls: Vec<String>,
    /// The nodes' cluster listeners (Raft over mutual TLS), https.
    pub(crate) cluster_urls: Vec<String>,
    /// The node processes (`node::dev_process`, as `cairn-node dev` runs them).
    pub(crate) processes: LocalCluster,
    /// The admin token `init` wrote.
    pub(crate) token: String,
    pub(crate) http: HttpClient,
}

impl Cluster {
    /// Runs `cairn-node init` for `nodes` nodes on free loopback ports, with `init_args` added,
    /// in a fresh directory named after `kind` and `name`. Starts nothing.
    pub(crate) fn init(kind: &str, name: &str, nodes: usize, init_args: &[&str]) -> Cluster {
        Cluster::init_with_scheme(kind, name, nodes, init_args, "http")
    }

    /// [`Cluster::init`] with public URLs of `scheme` (`http` or `https`).
    pub(crate) fn init_with_scheme(
        kind: &str,
        name: &str,
        nodes: usize,
        init_args: &[&str],
        scheme: &str,
    ) -> Cluster {
        let dir = std::env::temp_dir().join(format!("cairn-{kind}-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let urls: Vec<String> = (0..nodes)
            .map(|_| format!("{scheme}://127.0.0.1:{}", free_port()))
            .collect();
        let cluster_urls: Vec<String> = (0..nodes)
            .map(|_| format!("https://127.0.0.1:{}", free_port()))
            .collect();
        let mut init = Command::new(BIN);
        init.arg("init").arg("--dir").arg(&dir).args(init_args);
        for (url, cluster_url) in urls.iter().zip(&cluster_urls) {
            init.arg("--node-url").arg(url);
            init.arg("--cluster-url").arg(cluster_url);
        }
        assert!(init.status().unwrap().success(), "cairn-node init failed");
        Cluster::in_dir(dir, urls, cluster_urls)
    }

    /// The cluster `init` laid out in `dir`, its nodes at `urls` and `cluster_urls`.
    fn in_dir(dir: PathBuf, urls: Vec<String>, cluster_urls: Vec<String>) -> Cluster {
        let processes = LocalCluster::new(Path::new(BIN), &dir, &urls, &cluster_urls).unwrap();
        Cluster {
            token: processes.token().to_owned(),
            processes,
            dir,
            urls,
            cluster_urls,
            http: http_client(),
        }
    }

    /// A copy of the cluster directory `fixture` (as `init` lays it out, data included), its
    /// `nodes` configs moved to free loopback ports. Starts nothing.
    pub(crate) fn copy_of(fixture: &Path, name: &str, nodes: usize) -> Cluster {
        let dir = std::env::temp_dir().join(format!("cairn-fixture-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let copied = Command::new("cp").arg("-a").arg(fixture).arg(&dir).status();
        assert!(copied.unwrap().success(), "copying {}", fixture.display());
        let mut urls = Vec::new();
        let mut cluster_urls = Vec::new();
        for id in 1..=nodes {
            let (port, cluster_port) = (free_port(), free_port());
            urls.push(format!("http://127.0.0.1:{port}"));
            cluster_urls.push(format!("https://127.0.0.1:{cluster_port}"));
            let path = dir.join(format!("node-{id}/config.toml"));
            let mut config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
            config.insert("listen".into(), format!("127.0.0.1:{port}").into());
            config.insert("api_url".into(), urls[id - 1].clone().into());
            config.insert(
                "cluster_listen".into(),
                format!("127.0.0.1:{cluster_port}").into(),
            );
            config.insert("cluster_url".into(), cluster_urls[id - 1].clone().into());
            std::fs::write(&path, config.to_string()).unwrap();
        }
        Cluster::in_dir(dir, urls, cluster_urls)
    }

    /// The signer of the `artifacts` log, from the key `init` wrote.
    pub(crate) fn log_signer(&self) -> tlog::keys::Ed25519Signer {
        let key = std::fs::read_to_string(self.dir.join("keys/artifacts.key")).unwrap();
        tlog::keys::Ed25519Signer::from_private_key(key.trim()).unwrap()
    }

    pub(crate) fn config(&self, id: u64) -> PathBuf {
        self.dir.join(format!("node-{id}/config.toml"))
    }

    /// Changes node `id`'s config.toml with `change`.
    pub(crate) fn edit_config(&self, id: u64, change: impl FnOnce(&mut toml::Table)) {
        let path = self.config(id);
        let mut config: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        change(&mut config);
        std::fs::write(&path, config.to_string()).unwrap();
    }

    /// Node `id`'s addresses as the admin API takes them.
    pub(crate) fn address(&self, id: u64) -> serde_json::Value {
        let position = usize::try_from(id - 1).unwrap();
        serde_json::json!({
            "api_url": self.urls[position],
            "cluster_url": self.cluster_urls[position],
        })
    }

    /// Starts node `id` (`cairn-node run`), its output appended to its node.log.
    pub(crate) fn spawn(&mut self, id: u64) {
        self.processes.spawn(id).unwrap();
    }

    /// SIGKILL: no shutdown, no flush; only what was fsynced survives.
    pub(crate) fn kill(&mut self, id: u64) {
        assert!(
            self.processes.running().contains(&id),
            "node {id} is not running"
        );
        self.processes.kill(id);
    }

    /// Kills every running node.
    pub(crate) fn kill_all(&mut self) {
        self.processes.kill_all();
    }

    /// The ids of the running nodes.
    pub(crate) fn running(&self) -> Vec<u64> {
        self.processes.running()
    }

    /// Starts nodes 1 to `voters`, makes them the cluster (`/admin/init` on node 1), and waits
    /// until each is ready.
    pub(crate) async fn form(&mut self, voters: usize) {
        self.processes
            .form(voters as u64, READY_TIMEOUT)
            .await
            .unwrap();
    }

    /// A request to node `id` with the admin token and a JSON body: the status and the body,
    /// or why no answer came.
    pub(crate) async fn request(
        &self,
        method: &str,
        id: u64,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<(u16, Bytes), String> {
        let body = body.map(|body| serde_json::to_string(&body).unwrap());
        let authorization = format!("Bearer {}", self.token);
        self.request_as(method, id, path, Some(&authorization), body)
            .await
    }

    /// A request to node `id` with the given `authorization` header (if any) and body.
    pub(crate) async fn request_as(
        &self,
        method: &str,
        id: u64,
        path: &str,
        authorization: Option<&str>,
        body: Option<String>,
    ) -> Result<(u16, Bytes), String> {
        request_to(
            &self.http,
            &self.urls,
            method,
            id,
            path,
            authorization,
            body,
        )
        .await
    }

    /// Waits until node `id` answers `path` with 200.
    pub(crate) async fn wait_for(&self, id: u64, path: &str) {
        let started = Instant::now();
        loop {
            if let Ok((200, _)) = self.request("GET", id, path, None).await {
                return;
            }
            assert!(
                started.elapsed() < READY_TIMEOUT,
                "node {id}{path} not ready; see {}",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A running node other than `leader`.
    pub(crate) fn follower_of(&self, leader: u64) -> u64 {
        self.running()
            .into_iter()
            .find(|&id| id != leader)
            .expect("a running node other than the leader")
    }

    /// A client of the cluster listeners that presents node `id`'s member certificate, as a
    /// fellow member does.
    pub(crate) fn member_client(&self, id: u64) -> node::network::ClusterClient {
        let member = node::tls::ClusterTls::load(
            &self.dir.join("cluster-ca/ca.crt"),
            &self.dir.join(format!("node-{id}/node.crt")),
            &self.dir.join(format!("node-{id}/node.key")),
        )
        .unwrap();
        node::network::cluster_client(&member)
    }

    /// The leader, as a running node reports it, once one is running.
    pub(crate) async fn leader(&self) -> u64 {
        let started = Instant::now();
        loop {
            let running = self.running();
            for &id in &running {
                let status = self.processes.admin_json(id, "/admin/status", None).await;
                if let Ok(status) = status
                    && let Some(leader) = status["leader"].as_u64()
                    && running.contains(&leader)
                {
                    return leader;
                }
            }
            assert!(started.elapsed() < READY_TIMEOUT, "no leader");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A request to node `id` of the nodes at `urls` (node N at position N - 1) with the given
/// `authorization` header (if any) and a JSON body: the status and the body, or why no answer
/// came. For tasks that outlive a borrow of the [`Cluster`].
pub(crate) async fn request_to(
    http: &HttpClient,
    urls: &[String],
    method: &str,
    id: u64,
    path: &str,
    authorization: Option<&str>,
    body: Option<String>,
) -> Result<(u16, Bytes), String> {
    let url = format!("{}{path}", urls[usize::try_from(id - 1).unwrap()]);
    node::network::call(
        http,
        method,
        &url,
        authorization,
        body.unwrap_or_default(),
        REQUEST_TIMEOUT,
    )
    .await
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.kill_all();
        // Keep the nodes' logs and data when the test failed: they are the evidence.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
