//! `cairn-node log`: prepare a log's successor in a cluster directory, and rotate (freeze a
//! log and open its successor) through a running cluster's admin API.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use node::provision::{prepare_successor, successor_name};

/// Rotate a transparency log: freeze it (its final checkpoint is signed, it takes no more
/// appends, and it stays readable, provable and searchable) and open a successor with a new
/// origin and checkpoint key.
///
/// Two steps, because every node must hold the successor's key before any node signs with it:
///
///   1. `cairn-node log prepare --dir DIR --log artifacts` writes the key DIR/keys/artifacts-2.key
///      and adds the log (with `succeeds = "artifacts"`) to every DIR/node-*/config.toml. Copy
///      the key and the configs to the machines, then restart the nodes one at a time. The
///      successor is served (empty) but takes no appends yet.
///
///   2. `cairn-node log rotate --url URL --admin-token-file DIR/admin-token --log artifacts`
///      asks the leader to freeze `artifacts` and open `artifacts-2` through Raft. The leader
///      first checks that every member serves the successor with the same key. From then on
///      writes to the artifact log go to `artifacts-2`, and the trusted root lists both logs,
///      the frozen one with the end of its validity window.
///
/// See docs/operations.md, "Rotating a log and its key".
#[derive(Args, Debug)]
pub(crate) struct LogArgs {
    #[command(subcommand)]
    command: LogCommand,
}

#[derive(Subcommand, Debug)]
enum LogCommand {
    /// Write a successor's checkpoint key and add the successor to every node config of a
    /// cluster directory (step 1; restart the nodes afterwards).
    Prepare {
        /// The cluster directory `cairn-node init` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// The log to be succeeded (`artifacts`, `certificates`, or a successor of one).
        #[arg(long)]
        log: String,
        /// The successor's name; by default the log's name with `-2` (or the next number).
        #[arg(long)]
        successor: Option<String>,
        /// The successor's origin, a host name; by default the log's origin with its first
        /// label replaced by the successor's name (artifacts-2.cairn.localhost).
        #[arg(long)]
        origin: Option<String>,
    },
    /// Freeze a log and open its prepared successor, through the cluster's leader (step 2).
    Rotate {
        /// Any node's API URL; the request goes to the leader.
        #[arg(long)]
        url: String,
        /// The file holding the admin token.
        #[arg(long, env = "CAIRN_ADMIN_TOKEN_FILE")]
        admin_token_file: PathBuf,
        /// The log to freeze.
        #[arg(long)]
        log: String,
        /// The successor to open; by default the log's name with `-2` (or the next number).
        #[arg(long)]
        successor: Option<String>,
    },
}

pub(crate) fn run(args: LogArgs) -> anyhow::Result<()> {
    match args.command {
        LogCommand::Prepare {
            dir,
            log,
            successor,
            origin,
        } => {
            let successor = successor.unwrap_or_else(|| successor_name(&log));
            let prepared = prepare_successor(&dir, &log, &successor, origin.as_deref())?;
            println!(
                "log {} (origin {}) prepared to succeed {log}\nkey: {}\nverifier key: {}",
                prepared.name,
                prepared.origin,
                prepared.key_file.display(),
                prepared.verifier_key
            );
            for config in &prepared.configs {
                println!("added to {}", config.display());
            }
            println!(
                "next: copy the key and configs to each machine, restart the nodes one at a \
                 time, then run `cairn-node log rotate --log {log} --successor {}`",
                prepared.name
            );
            Ok(())
        }
        LogCommand::Rotate {
            url,
            admin_token_file,
            log,
            successor,
        } => {
            let token = std::fs::read_to_string(&admin_token_file)
                .with_context(|| format!("reading {}", admin_token_file.display()))?;
            let successor = successor.unwrap_or_else(|| successor_name(&log));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let answer = runtime.block_on(rotate(&url, token.trim(), &log, &successor))?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            Ok(())
        }
    }
}

/// Finds the leader through `url`'s `/admin/status` and asks it to rotate.
async fn rotate(
    url: &str,
    token: &str,
    log: &str,
    successor: &str,
) -> anyhow::Result<serde_json::Value> {
    let client = node::network::http_client();
    let bearer = format!("Bearer {token}");
    let call = |method: &'static str, url: String, body: String| {
        let (client, bearer) = (client.clone(), bearer.clone());
        async move {
            let (status, answer) = node::network::call(
                &client,
                method,
                &url,
                Some(&bearer),
                body,
                Duration::from_secs(30),
            )
            .await
            .map_err(|error| anyhow::anyhow!("{method} {url}: {error}"))?;
            let text = String::from_utf8_lossy(&answer).into_owned();
            if status != 200 {
                bail!("{method} {url}: http {status}: {}", text.trim());
            }
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{method} {url}: not JSON"))
        }
    };
    let url = url.trim_end_matches('/');
    let status = call("GET", format!("{url}/admin/status"), String::new()).await?;
    let leader = status["leader"]
        .as_u64()
        .and_then(|leader| status["nodes"][leader.to_string()].as_str())
        .context("the cluster has no leader now; retry shortly")?
        .to_owned();
    let body = serde_json::json!({ "log": log, "successor": successor }).to_string();
    call("POST", format!("{leader}/admin/logs/rotate"), body).await
}
