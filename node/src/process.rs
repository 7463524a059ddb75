//! What a node process needs from its operating system beyond the node: listeners that wait
//! out a previous process's sockets, the stop signals, enough file descriptors, and its log
//! lines on standard error; and [`Serving`], a node started from its configuration file and
//! serving both listeners. Shared by `cairn-node run`, `cairn-node dev` and the benchmark's
//! fill, which runs a stopped cluster's nodes in one process.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConfigError, NodeFile, Settings};
use crate::http::PublicOptions;
use crate::tls::{ClusterTls, TlsError};
use crate::{Env, Node};

/// Why a listener could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("listening on {address}: {source}")]
pub struct BindError {
    /// The address.
    pub address: SocketAddr,
    /// Why.
    pub source: std::io::Error,
}

/// Raises the soft limit on open files to the hard limit: every client connection is a file
/// descriptor, and the usual soft limit (1024) is below the default `connections_max`, so a
/// connection flood would otherwise leave no descriptor for storage or Raft.
pub fn raise_open_files_limit(connections_max: usize) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let limit = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(error) => {
                tracing::warn!(%error, soft, hard, "could not raise the open-file limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(error) => {
            tracing::warn!(%error, "could not read the open-file limit");
            return;
        }
    };
    // Room for the connections plus storage, the cluster listener and outgoing clients.
    let wanted = u64::try_from(connections_max)
        .unwrap_or(u64::MAX)
        .saturating_add(256);
    if limit < wanted {
        tracing::warn!(
            limit,
            connections_max,
            "the open-file limit is below connections_max + 256: raise the hard limit or lower \
             http.connections_max"
        );
    }
}

/// Binds a listener, retrying for a few seconds while the address is in use: right after a
/// crash the previous process's sockets can hold the port briefly.
pub async fn bind(address: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    let mut attempts = 0;
    loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && attempts < 20 => {
                attempts += 1;
                tracing::warn!(%address, attempts, "address in use; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(source) => return Err(BindError { address, source }),
        }
    }
}

/// Why a node could not be started from its configuration file and served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The cluster certificate, its key or the cluster CA could not be loaded.
    #[error("loading the cluster TLS material: {0}")]
    Tls(#[from] TlsError),
    /// A file the settings name could not be read or is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The node did not start over its data directory.
    #[error("starting the node over {data_dir}: {source}")]
    Start {
        /// The node's data directory.
        data_dir: PathBuf,
        /// Why.
        source: crate::node::StartError,
    },
    /// A listener could not be bound.
    #[error(transparent)]
    Bind(#[from] BindError),
}

/// A node started from its configuration file, serving its public API and its cluster
/// listener until [`Serving::shutdown`].
#[derive(Debug)]
pub struct Serving {
    node: Arc<Node>,
    stop: tokio::sync::watch::Sender<()>,
    servers: tokio::task::JoinSet<()>,
}

impl Serving {
    /// Starts the node `file` describes over its data directory as `cairn-node run` does, with
    /// its settings changed by `adjust`, and serves its public API with `public`.
    pub async fn start(
        file: &NodeFile,
        public: PublicOptions,
        adjust: impl FnOnce(&mut Settings),
    ) -> Result<Serving, ServeError> {
        // Before storage opens: a node without its cluster certificate could never take part.
        let tls = ClusterTls::load(
            &file.cluster_ca_file,
            &file.cluster_cert_file,
            &file.cluster_key_file,
        )?;
        // Every file the settings name is read and checked before storage opens: a bad key or
        // policy must stop the node at once.
        let mut settings = file.settings()?;
        adjust(&mut settings);
        let node = Node::start(settings, Env::production(&file.data_dir, &tls))
            .await
            .map_err(|source| ServeError::Start {
                data_dir: file.data_dir.clone(),
                source,
            })?;
        let listener = bind(file.listen).await?;
        let cluster_listener = bind(file.cluster_listen).await?;
        // Both listeners stop accepting once `stop` sends (or is dropped).
        let (stop, stopped) = tokio::sync::watch::channel(());
        let until_stopped = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
            let _ = stopped.changed().await;
        };
        let mut servers = tokio::task::JoinSet::new();
        servers.spawn(crate::http::serve_public(
            listener,
            Arc::clone(&node),
            public,
            until_stopped(stopped.clone()),
        ));
        servers.spawn(crate::http::serve_cluster(
            cluster_listener,
            tls.server_config(),
            Arc::clone(&node),
            until_stopped(stopped),
        ));
        Ok(Serving {
            node,
            stop,
            servers,
        })
    }

    /// The node.
    pub fn node(&self) -> &Arc<Node> {
        &self.node
    }

    /// Stops both listeners accepting, then shuts the node down.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        self.servers.join_all().await;
        self.node.shutdown().await;
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGTERM; Ctrl-C still works");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Asks each of `children` to stop (SIGTERM), then waits for them, killing (SIGKILL) those
/// still running after `grace`.
pub fn stop_children(mut children: Vec<&mut std::process::Child>, grace: Duration) {
    for child in &children {
        if let Ok(pid) = i32::try_from(child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    let deadline = std::time::Instant::now() + grace;
    for child in &mut children {
        loop {
            match child.try_wait() {
                Ok(Some(_)) | Err(_) => break,
                Ok(None) if std::time::Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// How log lines are written to standard error.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One line of text per event; coloured only when standard error is a terminal.
    #[default]
    Text,
    /// One JSON object per line (timestamp, level, target, fields), for log collectors.
    Json,
}

/// Sends the process's log lines to standard error in `format`, filtered by `RUST_LOG` if it
/// is set and by `default_filter` if not.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second subscriber (a test that set one) is not an error worth stopping for.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
