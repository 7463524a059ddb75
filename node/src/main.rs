//! `cairn-node`: run a Cairn node, create a cluster's material, or run a local cluster.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use node::config::NodeFile;
use node::env::{Blocking, SystemClock};
use node::network::{HttpNetwork, cluster_client, http_client};
use node::node::{Node, NodeConfig};
use node::provision::{DEV_ORIGIN_DOMAIN, init};
use node::storage::Stores;
use node::tls::ClusterTls;

#[path = "main/dev.rs"]
mod dev;

/// Cairn node: a replica of Cairn's transparency logs.
///
/// A cluster is three or five nodes; each holds every log's entries, tiles and signed
/// checkpoints, and any node answers reads and accepts writes (forwarding them to the leader).
/// For a local cluster in one command, use `cairn-node dev`.
#[derive(Parser, Debug)]
#[command(name = "cairn-node", version, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Start a local cluster of real node processes on loopback, ready for appends.
    ///
    /// The first run creates the cluster in DIR (log keys, admin token, one config per node);
    /// later runs resume it with its data. The nodes stop on Ctrl-C or SIGTERM. DIR/cluster.json
    /// describes the running cluster: node URLs and process ids, the admin token, each log's
    /// origin and verifier key.
    ///
    /// It also runs an INSECURE development OpenID issuer on 127.0.0.1:BASE_PORT+300 that mints
    /// a token for any e-mail (`curl -X POST URL/token -d email=alice@example.com`); only this
    /// dev cluster's configs allow-list it, so the CA issues certificates with no outside
    /// account. Never allow-list it anywhere else.
    Dev {
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
    },
    /// Create a cluster's material: log keys, the admin token, the cluster CA, the keyless CA
    /// (root and intermediate in ca/, the certificate log's SCT key keys/ct.key), the timestamp
    /// authority (root, signing certificate and key in tsa/), and per node a config and a TLS
    /// certificate and key for Raft traffic.
    ///
    /// Copy each node's directory, the shared keys, ca/, tsa/ and cluster-ca/ca.crt to its machine
    /// (never cluster-ca/ca.key: only `init` needs it, to issue certificates), then start every node
    /// with `cairn-node run --config node-N/config.toml` and initialise the cluster once with
    /// `POST /admin/init` on any node. Running init again keeps existing keys, the token and the
    /// CA, and keeps each node certificate that still fits its node.
    Init {
        /// Where to write the material.
        #[arg(long)]
        dir: PathBuf,
        /// The node API URLs, one per node, in id order (node ids are 1, 2, ...).
        #[arg(long = "node-url", required = true)]
        node_urls: Vec<String>,
        /// The nodes' cluster (Raft, mutual TLS) URLs, https, in id order; if none are given,
        /// each node's is its API host with the API port + 100.
        #[arg(long = "cluster-url")]
        cluster_urls: Vec<String>,
        /// The domain the logs' origins are named under: artifacts.DOMAIN and
        /// certificates.DOMAIN. Each origin is a bare host name, the artifact log's host as
        /// Sigstore clients know it (the trusted root lists it as `https://<origin>`; see
        /// docs/decisions/0005-origins-and-base-urls.md).
        #[arg(long, default_value = DEV_ORIGIN_DOMAIN)]
        origin_domain: String,
        /// An OIDC issuer whose tokens the CA accepts (audience `sigstore`, email identities),
        /// matched exactly against the token's `iss`; repeat for several. Other kinds (`uri`,
        /// `github-workflow`) are set in the `[ca]` section of the config files.
        #[arg(long = "oidc-issuer")]
        oidc_issuers: Vec<String>,
    },
    /// Run one node from its configuration file.
    ///
    /// Every setting of the file can be overridden by a flag or an environment variable (flags
    /// win over variables, both over the file); the logs themselves are set in the file only,
    /// because they must be identical on every node. docs/configuration.md describes each
    /// setting.
    Run {
        /// The node's configuration file (TOML).
        #[arg(long, env = "CAIRN_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Box<Overrides>,
    },
    /// Rebuild a stopped node's leaf index (dedup and search) from its stored leaves.
    ///
    /// The index is a function of the leaves, so this recovers an index damaged by hand or by a
    /// bug; a state database from before the current index layout is reindexed on start without
    /// it. Stop the node first (its database cannot be opened twice). Takes about as long as
    /// reading every leaf once; progress is logged every million leaves.
    Reindex {
        /// The node's configuration file (TOML): its `data_dir` holds the state database.
        #[arg(long, env = "CAIRN_CONFIG")]
        config: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One process-wide rustls provider, chosen here rather than guessed from crate features.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match cli.command {
        Commands::Init {
            dir,
            node_urls,
            cluster_urls,
            origin_domain,
            oidc_issuers,
        } => {
            let issuers = oidc_issuers
                .into_iter()
                .map(|url| ca::oidc::IssuerConfig {
                    url,
                    client_id: "sigstore".into(),
                    kind: ca::identity::IdentityKind::Email,
                })
                .collect();
            init(&dir, &node_urls, &cluster_urls, &origin_domain, issuers)?;
            println!("cluster material written to {}", dir.display());
            Ok(())
        }
        Commands::Run { config, overrides } => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(run(&config, *overrides))
        }
        Commands::Reindex { config } => {
            let file = NodeFile::load(&config)?;
            let logs = node::storage::reindex(&file.data_dir)
                .with_context(|| format!("reindexing the state in {}", file.data_dir.display()))?;
            for (log, size) in logs {
                println!("{log}: {size} leaves indexed");
            }
            Ok(())
        }
        Commands::Dev {
            nodes,
            dir,
            base_port,
        } => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(dev::dev(nodes, &dir, base_port))
        }
    }
}

/// Overrides of a node's configuration file, one per setting.
#[derive(clap::Args, Debug, Default)]
#[command(next_help_heading = "Overrides of the configuration file")]
struct Overrides {
    /// The address the public HTTP API listens on.
    #[arg(long, env = "CAIRN_LISTEN")]
    listen: Option<SocketAddr>,
    /// The URL clients and other nodes use for the public API.
    #[arg(long, env = "CAIRN_API_URL")]
    api_url: Option<String>,
    /// The address the mutual-TLS cluster listener (Raft traffic) listens on.
    #[arg(long, env = "CAIRN_CLUSTER_LISTEN")]
    cluster_listen: Option<SocketAddr>,
    /// The https URL other nodes use for Raft traffic.
    #[arg(long, env = "CAIRN_CLUSTER_URL")]
    cluster_url: Option<String>,
    /// The cluster CA certificate (PEM).
    #[arg(long, env = "CAIRN_CLUSTER_CA_FILE")]
    cluster_ca_file: Option<PathBuf>,
    /// This node's cluster certificate (PEM).
    #[arg(long, env = "CAIRN_CLUSTER_CERT_FILE")]
    cluster_cert_file: Option<PathBuf>,
    /// This node's cluster certificate key (PEM).
    #[arg(long, env = "CAIRN_CLUSTER_KEY_FILE")]
    cluster_key_file: Option<PathBuf>,
    /// Where the node keeps its databases.
    #[arg(long, env = "CAIRN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// A file holding the admin API's bearer token.
    #[arg(long, env = "CAIRN_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// Most leaves in one batch (one Raft entry).
    #[arg(long, env = "CAIRN_BATCH_LEAVES_MAX")]
    batch_leaves_max: Option<usize>,
    /// Most leaf bytes in one batch.
    #[arg(long, env = "CAIRN_BATCH_BYTES_MAX")]
    batch_bytes_max: Option<usize>,
    /// Longest a submission waits for its batch to fill, in milliseconds.
    #[arg(long, env = "CAIRN_BATCH_AGE_MS")]
    batch_age_ms: Option<u64>,
    /// Most submissions waiting to be batched; past it, submissions get 429.
    #[arg(long, env = "CAIRN_POOL_LEAVES_MAX")]
    pool_leaves_max: Option<usize>,
    /// Most batches proposed to Raft and not yet answered.
    #[arg(long, env = "CAIRN_PROPOSALS_IN_FLIGHT_MAX")]
    proposals_in_flight_max: Option<usize>,
    /// Longest a proposed batch waits for its outcome before its submissions are answered
    /// "outcome unknown", in milliseconds.
    #[arg(long, env = "CAIRN_PROPOSE_TIMEOUT_MS")]
    propose_timeout_ms: Option<u64>,
    /// Raft leader heartbeat interval, in milliseconds.
    #[arg(long, env = "CAIRN_HEARTBEAT_MS")]
    heartbeat_ms: Option<u64>,
    /// Shortest silence before a follower stands for election, in milliseconds.
    #[arg(long, env = "CAIRN_ELECTION_TIMEOUT_MIN_MS")]
    election_timeout_min_ms: Option<u64>,
    /// Longest silence before a follower stands for election, in milliseconds.
    #[arg(long, env = "CAIRN_ELECTION_TIMEOUT_MAX_MS")]
    election_timeout_max_ms: Option<u64>,
    /// Take a snapshot every this many Raft entries.
    #[arg(long, env = "CAIRN_SNAPSHOT_EVERY_ENTRIES")]
    snapshot_every_entries: Option<u64>,
    /// Raft entries kept after a snapshot (for followers that are slightly behind).
    #[arg(long, env = "CAIRN_SNAPSHOT_KEEP_ENTRIES")]
    snapshot_keep_entries: Option<u64>,
    /// Longest a client may take to send a request's head (and a keep-alive connection may stay
    /// idle), in milliseconds.
    #[arg(long, env = "CAIRN_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// Longest a request body may take to arrive once its head is read, in milliseconds.
    #[arg(long, env = "CAIRN_BODY_READ_TIMEOUT_MS")]
    body_read_timeout_ms: Option<u64>,
    /// Most connections the public listener keeps open; past it, new ones get a 503.
    #[arg(long, env = "CAIRN_CONNECTIONS_MAX")]
    connections_max: Option<usize>,
    /// Most certificate requests per identity per minute (the `[ca]` section's setting); 0 for
    /// no limit.
    #[arg(long, env = "CAIRN_CA_REQUESTS_PER_IDENTITY_PER_MINUTE")]
    ca_requests_per_identity_per_minute: Option<u32>,
}

impl Overrides {
    /// Applies every override given, then checks the result as the file itself is checked.
    fn apply(self, file: &mut NodeFile) -> anyhow::Result<()> {
        fn set<T>(target: &mut T, value: Option<T>) {
            if let Some(value) = value {
                *target = value;
            }
        }
        set(&mut file.listen, self.listen);
        set(&mut file.api_url, self.api_url);
        set(&mut file.cluster_listen, self.cluster_listen);
        set(&mut file.cluster_url, self.cluster_url);
        set(&mut file.cluster_ca_file, self.cluster_ca_file);
        set(&mut file.cluster_cert_file, self.cluster_cert_file);
        set(&mut file.cluster_key_file, self.cluster_key_file);
        set(&mut file.data_dir, self.data_dir);
        set(&mut file.admin_token_file, self.admin_token_file);
        set(&mut file.sequencer.batch_leaves_max, self.batch_leaves_max);
        set(&mut file.sequencer.batch_bytes_max, self.batch_bytes_max);
        set(&mut file.sequencer.batch_age_ms, self.batch_age_ms);
        set(&mut file.sequencer.pool_leaves_max, self.pool_leaves_max);
        set(
            &mut file.sequencer.proposals_in_flight_max,
            self.proposals_in_flight_max,
        );
        set(
            &mut file.sequencer.propose_timeout_ms,
            self.propose_timeout_ms,
        );
        set(&mut file.raft.heartbeat_ms, self.heartbeat_ms);
        set(
            &mut file.raft.election_timeout_min_ms,
            self.election_timeout_min_ms,
        );
        set(
            &mut file.raft.election_timeout_max_ms,
            self.election_timeout_max_ms,
        );
        set(
            &mut file.raft.snapshot_every_entries,
            self.snapshot_every_entries,
        );
        set(
            &mut file.raft.snapshot_keep_entries,
            self.snapshot_keep_entries,
        );
        set(
            &mut file.http.header_read_timeout_ms,
            self.header_read_timeout_ms,
        );
        set(
            &mut file.http.body_read_timeout_ms,
            self.body_read_timeout_ms,
        );
        set(&mut file.http.connections_max, self.connections_max);
        if let Some(ca) = &mut file.ca {
            set(
                &mut ca.requests_per_identity_per_minute,
                self.ca_requests_per_identity_per_minute,
            );
        }
        file.check()
            .context("after applying flags and environment variables")?;
        Ok(())
    }
}

async fn run(config_path: &Path, overrides: Overrides) -> anyhow::Result<()> {
    let mut file = NodeFile::load(config_path)?;
    overrides.apply(&mut file)?;
    raise_open_files_limit(file.http.connections_max);
    // Before storage opens: a node without its cluster certificate could never take part.
    let tls = ClusterTls::load(
        &file.cluster_ca_file,
        &file.cluster_cert_file,
        &file.cluster_key_file,
    )
    .context("loading the cluster TLS material")?;
    let logs = file.load_logs()?;
    // Before storage opens, like the other settings: a bad policy must stop the node at once.
    let witnessing = file.load_witnessing()?;
    let http = http_client();
    let cluster = cluster_client(&tls);
    let bundles = Arc::new(node::network::bundles::HttpBundleSource::new(
        http.clone(),
        cluster.clone(),
    ));
    let stores = Stores::open_dir(&file.data_dir, logs.clone(), Blocking::Pool, bundles)
        .with_context(|| format!("opening storage in {}", file.data_dir.display()))?;
    let config = NodeConfig {
        id: file.id,
        logs,
        raft: file.raft_config(),
        sequencer: file.sequencer_config(),
        admin_token: file.load_admin_token()?,
        blocking: Blocking::Pool,
    };
    let node = Node::start(
        config,
        stores,
        HttpNetwork::new(cluster),
        http,
        Arc::new(SystemClock),
    )
    .await?;
    node.set_public_url(&file.api_url);
    if let Some(ca_file) = &file.ca {
        let fetch = Arc::new(node::network::fetch::HttpFetch::new());
        let ca = node::keyless::KeylessCa::load(ca_file, fetch).context("loading the CA")?;
        tracing::info!(issuers = ca_file.issuers.len(), "keyless CA serving");
        node.install_ca(Arc::new(ca));
        if let Some(tsa_file) = &ca_file.tsa {
            let tsa = node::keyless::load_tsa(tsa_file).context("loading the TSA")?;
            tracing::info!("timestamp authority serving");
            node.install_tsa(Arc::new(tsa));
        }
    }
    // Witnessing runs beside the node, outside Raft, reading only committed state.
    if let Some(witnessing) = witnessing {
        let witnessing = Arc::new(node::witnessing::Witnessing::new(
            witnessing,
            node.logs.iter(),
            Arc::new(node::witnessing::HttpTransport(node.http.clone())),
        ));
        let _ = node.witnessing.set(Arc::clone(&witnessing));
        tokio::spawn(witnessing.run(Arc::clone(&node)));
    }
    let listener = bind(file.listen).await?;
    let cluster_listener = bind(file.cluster_listen).await?;
    tracing::info!(
        id = file.id,
        listen = %file.listen,
        url = %file.api_url,
        cluster_listen = %file.cluster_listen,
        cluster_url = %file.cluster_url,
        "node serving"
    );
    // Both listeners stop accepting on the first Ctrl-C or SIGTERM.
    let (stop, stopped) = tokio::sync::watch::channel(());
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<()>| async move {
        let _ = stopped.changed().await;
    };
    let servers = async {
        tokio::join!(
            node::http::serve_with_limits(
                listener,
                Arc::clone(&node),
                file.connection_limits(),
                until_stopped(stopped.clone())
            ),
            node::http::serve_cluster(
                cluster_listener,
                tls.server_config(),
                Arc::clone(&node),
                until_stopped(stopped),
            ),
        )
    };
    // A storage error (a full or failing disk) stops the Raft core for good; a process that
    // only serves stale reads would hide it, so stop and exit non-zero for the supervisor to
    // restart the node once the disk is fixed (the restart resumes from what was synced).
    let raft_stopped = std::sync::Mutex::new(None);
    let signal = async {
        let mut metrics = node.raft.metrics();
        tokio::select! {
            () = shutdown_signal() => {}
            stopped = metrics.wait_for(|m| m.running_state.is_err()) => {
                let reason = stopped.map_or_else(
                    |_| "raft stopped".to_string(),
                    |m| format!("{:?}", m.running_state),
                );
                tracing::error!(%reason, "raft stopped; shutting down");
                if let Ok(mut slot) = raft_stopped.lock() {
                    *slot = Some(reason);
                }
            }
        }
        let _ = stop.send(());
    };
    tokio::join!(servers, signal);
    tracing::info!("shutting down");
    node.shutdown().await;
    let stopped = raft_stopped.lock().ok().and_then(|mut slot| slot.take());
    match stopped {
        Some(reason) => anyhow::bail!("raft stopped: {reason}"),
        None => Ok(()),
    }
}

/// Raises the soft limit on open files to the hard limit: every client connection is a file
/// descriptor, and the usual soft limit (1024) is below the default `connections_max`, so a
/// connection flood would otherwise leave no descriptor for storage or Raft.
fn raise_open_files_limit(connections_max: usize) {
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
async fn bind(address: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    let mut attempts = 0;
    loop {
        match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => return Ok(listener),
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse && attempts < 20 => {
                attempts += 1;
                tracing::warn!(%address, attempts, "address in use; retrying");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(error) => return Err(error).with_context(|| format!("listening on {address}")),
        }
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
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
