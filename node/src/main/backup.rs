//! `cairn-node backup` and `cairn-node restore` (the work is in `node::backup`).

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use node::backup::{Published, RestoreAs};
use node::config::NodeFile;
use node::network::bundles::HttpBundleSource;
use node::network::{call, cluster_client, http_client};
use node::tls::ClusterTls;
use node::types::{LogName, NodeAddress};

/// Copy a running node's logs into a directory, without stopping it.
///
/// Asks the node (admin API) for its state as of one moment: each log's size and signed
/// checkpoint. Then copies every leaf below those sizes as C2SP entry bundles (the log's public
/// tiles) with the leaves' integrated times, both over the cluster listener with the node's
/// cluster certificate, and keeps the backup only if each log's leaves give its signed root. Run it
/// again into the same directory to bring the backup up to date: full bundles already there are
/// kept, only new ones are fetched.
///
/// The backup holds no secret. Keep the keys, the admin token and each node's config apart (they
/// are files that never change). Restore with `cairn-node restore`; docs/operations.md has the
/// whole procedure.
#[derive(clap::Args, Debug)]
pub(crate) struct BackupArgs {
    /// The configuration file of the node to copy from (TOML): its API, admin token file, logs
    /// and cluster certificate are used.
    #[arg(long, env = "CAIRN_CONFIG")]
    config: PathBuf,
    /// The backup directory, created if needed; a backup already there is brought up to date.
    #[arg(long)]
    out: PathBuf,
}

/// Restore a backup into a node's new, empty data directory.
///
/// Installs the backup the way a node catching up installs a snapshot: every log's root is
/// recomputed from the backup's leaves and checked against its signed checkpoint before anything
/// becomes visible. Restore each node from the same backup, then start them.
///
/// Without --new-cluster the node joins the cluster the backup came from as a new member (add it
/// with `POST /admin/learners`): the leader sends it only what came after the backup.
///
/// With --new-cluster the nodes form a new cluster (start them, then `POST /admin/init`) that
/// continues the logs from the backup. A log must never sign a checkpoint smaller than one it
/// has published: witnesses refuse it and monitors see a fork. So give the latest checkpoint of
/// each log that anyone has seen (from a witness, a monitor or a surviving node's
/// `/logs/<log>/checkpoint`) with --published: the restore refuses a backup that ends before it,
/// or that holds another history.
#[derive(clap::Args, Debug)]
pub(crate) struct RestoreArgs {
    /// The configuration file of the node to restore (TOML): its `data_dir` must be empty or
    /// absent, and its logs are the ones checked.
    #[arg(long, env = "CAIRN_CONFIG")]
    config: PathBuf,
    /// The backup directory `cairn-node backup` wrote.
    #[arg(long)]
    backup: PathBuf,
    /// Start a new cluster from the backup instead of joining the old one.
    #[arg(long)]
    new_cluster: bool,
    /// A signed checkpoint (a file holding the note) that was published: the backup must
    /// reach its size and hold the same root there. Repeat for each log.
    #[arg(long, value_name = "FILE")]
    published: Vec<PathBuf>,
    /// With --new-cluster, restore a log although no --published checkpoint covers it. Only
    /// when it is certain that no later checkpoint of it was ever published.
    #[arg(long)]
    no_published_check: bool,
}

/// How long the admin call that starts a backup may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let file = NodeFile::load(&args.config)?;
    let settings = file.settings()?;
    let tls = ClusterTls::load(
        &file.cluster_ca_file,
        &file.cluster_cert_file,
        &file.cluster_key_file,
    )
    .context("loading the cluster TLS material")?;
    let token = std::fs::read_to_string(&file.admin_token_file)
        .with_context(|| format!("reading {}", file.admin_token_file.display()))?;
    let http = http_client();
    let url = format!("{}/admin/backup", file.api_url.trim_end_matches('/'));
    let authorization = format!("Bearer {}", token.trim());
    let (status, body) = call(
        &http,
        "GET",
        &url,
        Some(&authorization),
        String::new(),
        ADMIN_TIMEOUT,
    )
    .await
    .map_err(|error| anyhow::anyhow!(error))?;
    if status != 200 {
        bail!("{url}: HTTP {status}: {}", String::from_utf8_lossy(&body));
    }
    let snapshot = postcard::from_bytes(&body).with_context(|| format!("decoding {url}"))?;
    let member = NodeAddress {
        api_url: file.api_url.clone(),
        cluster_url: file.cluster_url.clone(),
    };
    let source = HttpBundleSource::new(cluster_client(&tls));
    let terminal = std::io::stderr().is_terminal();
    let progress = |log: &LogName, copied: u64, total: u64| {
        // A line per 2^20 leaves, or a line kept current on a terminal.
        if terminal {
            eprint!("\r{log}: {copied} of {total} leaves");
        } else if copied % (1 << 20) < 256 || copied == total {
            eprintln!("{log}: {copied} of {total} leaves");
        }
    };
    let taken_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .context("formatting the time")?;
    let summary = node::backup::take(
        &source,
        &member,
        &settings.logs,
        &snapshot,
        &args.out,
        taken_at,
        &progress,
    )
    .await
    .with_context(|| format!("backing up {} into {}", file.api_url, args.out.display()))?;
    if terminal {
        eprintln!();
    }
    for log in &summary.logs {
        println!(
            "{}: {} leaves, root {} ({} bundles fetched)",
            log.log, log.tree_size, log.root, log.bundles_fetched
        );
    }
    println!("backup written to {}", args.out.display());
    Ok(())
}

pub(crate) async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let file = NodeFile::load(&args.config)?;
    let settings = file.settings()?;
    let published = args
        .published
        .iter()
        .map(|path| read_published(path))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let restore_as = if args.new_cluster {
        RestoreAs::NewCluster {
            every_log_published: !args.no_published_check,
        }
    } else {
        RestoreAs::Member
    };
    let logs = node::backup::restore(
        &file.data_dir,
        settings.logs,
        &args.backup,
        &published,
        restore_as,
    )
    .await
    .with_context(|| {
        format!(
            "restoring {} into {}",
            args.backup.display(),
            file.data_dir.display()
        )
    })?;
    for (log, size) in logs {
        println!("{log}: {size} leaves restored, root verified");
    }
    match restore_as {
        RestoreAs::Member => println!(
            "restored into {}: start the node, then add it with POST /admin/learners",
            file.data_dir.display()
        ),
        RestoreAs::NewCluster { .. } => println!(
            "restored into {}: start every node of the new cluster, then POST /admin/init",
            file.data_dir.display()
        ),
    }
    Ok(())
}

fn read_published(path: &Path) -> anyhow::Result<Published> {
    Ok(Published {
        name: path.display().to_string(),
        note: std::fs::read_to_string(path)
            .with_context(|| format!("reading {}", path.display()))?,
    })
}
