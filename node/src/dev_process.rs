//! A `cairn-node dev` process as a harness: the one way the tests and the bench start a local
//! cluster of real node processes. It runs the binary's `dev` supervisor (which provisions the
//! cluster, starts each node as a `cairn-node run` child and the development OIDC issuer), waits
//! until the cluster is ready, and stops it with SIGTERM when dropped, so the supervisor stops
//! its nodes cleanly.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Offsets from the base port that a dev cluster of up to three nodes binds: APIs, cluster
/// listeners, and the issuer.
const PORT_OFFSETS: [u16; 7] = [0, 1, 2, 100, 101, 102, 300];
/// The file the supervisor writes last, once every node answers.
const READY_FILE: &str = "client_trust_config.json";

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
    /// Starts the supervisor and waits until the cluster is ready.
    pub fn start(options: DevOptions) -> Result<DevProcess, DevError> {
        let spawn_error = |source| DevError::Spawn {
            program: options.binary.clone(),
            source,
        };
        let log = std::fs::File::create(&options.log).map_err(spawn_error)?;
        let child = Command::new(&options.binary)
            .arg("dev")
            .arg("--nodes")
            .arg(options.nodes.to_string())
            .arg("--base-port")
            .arg(options.base_port.to_string())
            .arg("--dir")
            .arg(&options.dir)
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
        let ready = dev.options.dir.join(READY_FILE);
        let started = Instant::now();
        while !ready.exists() {
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
        // Written just before; give the write a moment to finish.
        std::thread::sleep(Duration::from_millis(200));
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
        let path = self.options.dir.join("cluster.json");
        let text = std::fs::read_to_string(&path).map_err(|error| DevError::ClusterJson {
            path: path.clone(),
            message: error.to_string(),
        })?;
        serde_json::from_str(&text).map_err(|error| DevError::ClusterJson {
            path,
            message: error.to_string(),
        })
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
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DevProcess {
    fn drop(&mut self) {
        self.terminate();
    }
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
