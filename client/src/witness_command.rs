//! `cairn witness serve|poll|gossip|init` and `cairn monitor`: thin wrappers over the `witness`
//! crate (files, runtime, logging and exit codes live here).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use tlog::keys::{Verifier, Verifiers};
use witness::config::Logs;
use witness::fetch::{Http, LogClient};
use witness::monitor::{Monitor, MonitorError};
use witness::storage::RedbStore;
use witness::{SplitView, Store, Witness};

use crate::{EXIT_INPUT, Failure, input};

/// Exit code: a split view was found (the evidence is printed and kept).
pub(crate) const EXIT_SPLIT_VIEW: u8 = 4;

#[derive(Debug, Subcommand)]
pub(crate) enum WitnessCommand {
    /// Make the witness key (if there is none) and print its C2SP verifier key.
    Init(InitArgs),
    /// Serve C2SP tlog-witness `POST /add-checkpoint` and the read endpoints.
    Serve(ServeArgs),
    /// Poll the logs of the policy (those with a URL), cosign what is consistent, and serve.
    Poll(ServeArgs),
    /// Compare what several witnesses cosigned, to find a log showing them different trees.
    Gossip(GossipArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The witness's directory (key `witness.key`, state `witness.redb`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The witness's name, a schema-less URL by convention (used when the key is made).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// The witness's directory (key `witness.key`, state `witness.redb`).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The witness's name, a schema-less URL by convention (used when the key is made).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The C2SP tlog-policy file whose `log <vkey> [<url>]` lines are the logs to witness.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Where to listen (`poll` serves only if given).
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
    /// Seconds between polls (`serve` polls only if given).
    #[arg(long, value_name = "SECONDS")]
    interval: Option<f64>,
    #[command(flatten)]
    logging: LogArgs,
}

/// How a long-running command writes its log lines.
#[derive(Clone, Copy, Debug, Args)]
pub(crate) struct LogArgs {
    /// Log lines on standard error as text (coloured only on a terminal) or json (one object
    /// per line, for log collectors). `RUST_LOG` filters them.
    #[arg(long, env = "CAIRN_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct GossipArgs {
    /// The policy listing the logs (with URLs, to fetch consistency proofs).
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// A witness's base URL; give two or more.
    #[arg(long = "witness", value_name = "URL", required = true)]
    witnesses: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct MonitorArgs {
    /// The log's tlog-tiles prefix, e.g. http://127.0.0.1:3000/logs/artifacts.
    #[arg(long, value_name = "URL")]
    log: String,
    /// The log's checkpoint key as a C2SP verifier key (its name is the origin).
    #[arg(long, value_name = "VKEY")]
    log_key: String,
    /// The identity to report: an e-mail or URI subject alternative name, matched exactly.
    #[arg(long, value_name = "ID")]
    identity: String,
    /// The cursor file (made if missing; the monitor resumes from it).
    #[arg(long, value_name = "FILE")]
    cursor: PathBuf,
    /// The first leaf index to read when there is no cursor yet.
    #[arg(long, value_name = "INDEX", default_value_t = 0)]
    start: u64,
    /// Check once and exit instead of following the log.
    #[arg(long)]
    once: bool,
    /// Seconds between checks when following.
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0)]
    interval: f64,
    /// Print each match as one JSON object (the entry, its inclusion proof and checkpoint)
    /// instead of one readable line.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    logging: LogArgs,
}

fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
        .map_err(input)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Colour codes only for a terminal: in a log file they are noise.
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}

/// One readable line for a monitor's match: index, identity, issuer, signed digest, and when
/// the certificate became valid.
fn match_line(found: &witness::monitor::Match) -> String {
    format!(
        "{}  {}  issuer {}  {}  certified {}",
        found.index,
        found.identity,
        found.issuer.as_deref().unwrap_or("(none)"),
        found.signed_digest.as_deref().unwrap_or("(unparsed entry)"),
        found.certified_at
    )
}

fn split_view_failure(views: &[SplitView]) -> Failure {
    // The evidence goes to stdout in full, so it survives in whatever captured the output.
    for view in views {
        println!(
            "{}",
            serde_json::to_string_pretty(view).unwrap_or_else(|_| format!("{view:?}"))
        );
    }
    let reasons: Vec<String> = views
        .iter()
        .map(|v| format!("{}: {}", v.origin, v.reason))
        .collect();
    Failure {
        code: EXIT_SPLIT_VIEW,
        error: anyhow::anyhow!(
            "SPLIT VIEW: the log showed checkpoints that are not one history ({}); both \
             signed checkpoints are printed above as evidence",
            reasons.join("; ")
        ),
    }
}

pub(crate) fn witness(command: &WitnessCommand) -> Result<(), Failure> {
    init_logging(match command {
        WitnessCommand::Serve(args) | WitnessCommand::Poll(args) => args.logging.log_format,
        WitnessCommand::Init(_) | WitnessCommand::Gossip(_) => LogFormat::Text,
    });
    match command {
        WitnessCommand::Init(args) => {
            std::fs::create_dir_all(&args.dir)
                .with_context(|| format!("creating {}", args.dir.display()))
                .map_err(input)?;
            let cosigner =
                witness::key::load_or_create(&args.dir.join("witness.key"), args.name.as_deref())
                    .map_err(input)?;
            println!("{}", cosigner.verifier().to_vkey());
            Ok(())
        }
        WitnessCommand::Serve(args) => runtime()?.block_on(serve(args, false)),
        WitnessCommand::Poll(args) => runtime()?.block_on(serve(args, true)),
        WitnessCommand::Gossip(args) => runtime()?.block_on(gossip(args)),
    }
}

fn load_logs(path: &Path) -> Result<Logs, Failure> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading policy {}", path.display()))
        .map_err(input)?;
    Logs::from_policy_text(&text)
        .with_context(|| format!("policy {}", path.display()))
        .map_err(input)
}

async fn serve(args: &ServeArgs, poll: bool) -> Result<(), Failure> {
    let logs = load_logs(&args.policy)?;
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))
        .map_err(input)?;
    let cosigner =
        witness::key::load_or_create(&args.dir.join("witness.key"), args.name.as_deref())
            .map_err(input)?;
    let store: Arc<dyn Store> =
        Arc::new(RedbStore::open(&args.dir.join("witness.redb")).map_err(input)?);
    let witness = Arc::new(Witness::new(cosigner, logs, store));
    println!("witness verifier key: {}", witness.verifier_key());
    let listen = match (args.listen, poll) {
        (Some(address), _) => Some(address),
        (None, true) => None,
        (None, false) => Some(std::net::SocketAddr::from(([127, 0, 0, 1], 7380))),
    };
    if let Some(address) = listen {
        let room = u64::try_from(witness::server::CONNECTIONS_MAX)
            .unwrap_or(u64::MAX)
            .saturating_add(256);
        match witness::server::raise_open_files_limit() {
            Ok(limit) if limit < room => eprintln!(
                "warning: the open-file limit ({limit}) is below the witness's {} connections \
                 plus 256; raise the hard limit (ulimit -Hn)",
                witness::server::CONNECTIONS_MAX
            ),
            Ok(_) => {}
            Err(error) => eprintln!("warning: could not raise the open-file limit: {error}"),
        }
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .with_context(|| format!("listening on {address}"))
            .map_err(input)?;
        println!(
            "witness listening on http://{}",
            listener.local_addr().map_err(input)?
        );
        tokio::spawn(witness::server::serve(
            listener,
            witness.clone(),
            std::future::pending(),
        ));
    }
    let interval = match (args.interval, poll) {
        (Some(seconds), _) => Some(seconds),
        (None, true) => Some(30.0),
        (None, false) => None,
    };
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match interval {
        Some(seconds) => {
            let interval = Duration::from_secs_f64(seconds.max(0.05));
            tokio::select! {
                evidence = witness::poller::run(witness.clone(), interval) => {
                    Err(split_view_failure(&[evidence]))
                }
                () = shutdown => Ok(()),
            }
        }
        None => {
            shutdown.await;
            Ok(())
        }
    }
}

async fn gossip(args: &GossipArgs) -> Result<(), Failure> {
    let logs = load_logs(&args.policy)?;
    let report = witness::gossip::compare(&Http::new(), &logs, &args.witnesses).await;
    for error in &report.errors {
        eprintln!("cairn: gossip: {error}");
    }
    if !report.split_views.is_empty() {
        return Err(split_view_failure(&report.split_views));
    }
    for (origin, sizes) in &report.consistent {
        println!(
            "{origin}: consistent across {} witnesses (sizes {sizes:?})",
            sizes.len()
        );
    }
    if report.consistent.is_empty() {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!("no witness answered for any log"),
        });
    }
    Ok(())
}

pub(crate) fn monitor(args: &MonitorArgs) -> Result<(), Failure> {
    init_logging(args.logging.log_format);
    let verifier = Verifier::parse(&args.log_key)
        .context("--log-key")
        .map_err(input)?;
    let origin = verifier.name().to_owned();
    let mut verifiers = Verifiers::new();
    verifiers
        .push(verifier)
        .context("--log-key")
        .map_err(input)?;
    let monitor = Monitor::new(
        LogClient::new(Http::new(), &args.log),
        &origin,
        verifiers,
        &args.identity,
        &args.cursor,
    );
    runtime()?.block_on(async {
        loop {
            let cursor = monitor.load_cursor(args.start).map_err(input)?;
            match monitor.step(&cursor).await {
                Ok((next, matches)) => {
                    for found in &matches {
                        if args.json {
                            println!(
                                "{}",
                                serde_json::to_string(found)
                                    .unwrap_or_else(|_| format!("{found:?}"))
                            );
                        } else {
                            println!("{}", match_line(found));
                        }
                    }
                    monitor.save_cursor(&next).map_err(input)?;
                    tracing::info!(size = next.next_index, matches = matches.len(), "checked");
                }
                Err(MonitorError::SplitView(evidence)) => {
                    return Err(split_view_failure(&[*evidence]));
                }
                Err(error @ (MonitorError::Entry { .. } | MonitorError::Cursor { .. })) => {
                    return Err(Failure {
                        code: if matches!(error, MonitorError::Cursor { .. }) {
                            EXIT_INPUT
                        } else {
                            1
                        },
                        error: error.into(),
                    });
                }
                Err(error) if args.once => {
                    return Err(Failure {
                        code: 1,
                        error: error.into(),
                    });
                }
                Err(error) => tracing::warn!("monitor: {error}"),
            }
            if args.once {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs_f64(args.interval.max(0.05))).await;
        }
    })
}
