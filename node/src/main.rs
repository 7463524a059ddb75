//! `cairn-node`: run a Cairn node, create a cluster's material, or run a local cluster.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};
use node::config::NodeFile;
use node::process::{LogFormat, Serving, init_logging, raise_open_files_limit, shutdown_signal};
use node::provision::{DEV_ORIGIN_DOMAIN, init};
use overrides::Overrides;

#[path = "main/backup.rs"]
mod backup;
#[path = "main/ca.rs"]
mod ca_command;
#[path = "main/dev.rs"]
mod dev;
#[path = "main/log.rs"]
mod log_command;
#[path = "main/overrides.rs"]
mod overrides;

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
    /// How log lines are written to standard error: text (coloured only on a terminal) or
    /// json (one object per line, for log collectors). `RUST_LOG` filters them.
    #[arg(
        long,
        global = true,
        env = "CAIRN_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Start a local cluster of real node processes on loopback, ready for appends.
    ///
    /// The first run creates the cluster in DIR (log keys, admin token, one config per node);
    /// later runs resume it with its data. The nodes stop on Ctrl-C or SIGTERM. DIR/cluster.json
    /// describes the running cluster: node URLs and process ids, the admin token, each log's
    /// origin and verifier key. Each node's URL opens the log explorer in a browser.
    ///
    /// It also runs an INSECURE development OpenID issuer on 127.0.0.1:BASE_PORT+300 that mints
    /// a token for any e-mail (`curl -X POST URL/token -d email=alice@example.com`); only this
    /// dev cluster's configs allow-list it, so the CA issues certificates with no outside
    /// account. Never allow-list it anywhere else.
    Dev(dev::DevArgs),
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
    /// win over variables, both over the file); the logs, identical on every node, are set in
    /// the file only. docs/configuration.md describes each setting.
    Run {
        /// The node's configuration file (TOML).
        #[arg(long, env = "CAIRN_CONFIG")]
        config: PathBuf,
        #[command(flatten)]
        overrides: Overrides,
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
    Backup(backup::BackupArgs),
    Restore(backup::RestoreArgs),
    Log(log_command::LogArgs),
    Ca(ca_command::CaArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // One process-wide rustls provider, chosen here rather than guessed from crate features.
    rustls::crypto::aws_lc_rs::default_provider()
        .install_default()
        .map_err(|_| anyhow::anyhow!("a rustls crypto provider was already installed"))?;
    init_logging(cli.log_format, "info,openraft=warn");
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
        Commands::Run { config, overrides } => multi_thread()?.block_on(run(&config, overrides)),
        Commands::Reindex { config } => {
            let file = NodeFile::load(&config)?;
            let logs = node::storage::reindex(&file.data_dir)
                .with_context(|| format!("reindexing the state in {}", file.data_dir.display()))?;
            for (log, size) in logs {
                println!("{log}: {size} leaves indexed");
            }
            Ok(())
        }
        Commands::Backup(args) => multi_thread()?.block_on(backup::backup(args)),
        Commands::Restore(args) => multi_thread()?.block_on(backup::restore(args)),
        Commands::Log(args) => log_command::run(args),
        Commands::Ca(args) => ca_command::run(args),
        Commands::Dev(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(dev::dev(&args, cli.log_format))
        }
    }
}

fn multi_thread() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

async fn run(config_path: &Path, overrides: Overrides) -> anyhow::Result<()> {
    let file = NodeFile::load(config_path)?
        .with_overrides(&overrides.0)
        .context("after applying flags and environment variables")?;
    raise_open_files_limit(file.http.connections_max);
    let public = file.public_options()?;
    let serving = Serving::start(&file, public, |settings| {
        if let Some(ca) = &settings.ca {
            tracing::info!(
                issuers = ca.issuers.len(),
                tsa = ca.tsa.is_some(),
                "keyless CA serving"
            );
        }
    })
    .await?;
    tracing::info!(
        id = file.id,
        listen = %file.listen,
        url = %file.api_url,
        cluster_listen = %file.cluster_listen,
        cluster_url = %file.cluster_url,
        "node serving"
    );
    // Both listeners stop accepting on the first Ctrl-C or SIGTERM. A storage error (a full or
    // failing disk) stops the Raft core for good; a process that only serves stale reads would
    // hide it, so stop and exit non-zero for the supervisor to restart the node once the disk
    // is fixed (the restart resumes from what was synced).
    let raft_stopped = tokio::select! {
        () = shutdown_signal() => None,
        reason = serving.node().raft_stopped() => Some(reason),
    };
    tracing::info!("shutting down");
    serving.shutdown().await;
    match raft_stopped {
        Some(reason) => anyhow::bail!("raft stopped: {reason}"),
        None => Ok(()),
    }
}
