//! `cairn log`: the log itself, as rekor-cli users expect it (`info`, `get`, `search`,
//! `verify`, `consistency`, `tail`), every answer verified against the trusted root before it
//! is printed (except `get`, which shows an entry as the log returns it). The requests and
//! checks are in `cli::log`; this is the command line.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use client::TrustedRoot;
use client::trust_root::TRUSTED_ROOT_BYTES_MAX;

use crate::cli::log::{Checkpoint, Criterion, EntryId, Found};
use crate::cli::net::Http;
use crate::{DEV_URL, Failure, cli, input, not_verified, read_bounded, service};

/// The longest a PEM key or certificate chain given to `search --public-key` may be.
const PEM_BYTES_MAX: usize = 64 * 1024;

#[derive(Debug, Subcommand)]
pub(crate) enum LogCommand {
    /// The latest checkpoint, verified with the trusted root's log key, and proved consistent
    /// with the last one this machine saw ($CAIRN_HOME/log-state.json); exit 1 if it is not.
    #[command(after_help = "Example:\n  \
        cairn log info --trust-root cairn-dev/trusted_root.json")]
    Info(InfoArgs),
    /// An entry by index or UUID, with its body decoded; with --trust-root, only once its
    /// inclusion is proved as `cairn log verify` proves it (exit 1 if not).
    #[command(after_help = "Examples:\n  \
        cairn log get 0\n  \
        cairn log get 0 --trust-root cairn-dev/trusted_root.json\n  \
        cairn log get 3f2a...e1 --url http://127.0.0.1:7002")]
    Get(GetArgs),
    /// Find entries by artifact, digest, public key or signer identity (the log's replicated
    /// search index, complete on every node). Prints one UUID per line (with the index for
    /// `--identity`).
    #[command(after_help = "Examples:\n  \
        cairn log search --artifact app.tar.gz\n  \
        cairn log search --sha256 a0cfc7...01bf --json\n  \
        cairn log search --public-key cosign.pub\n  \
        cairn log search --email you@example.com --sha256 a0cf...01bf --operator and\n  \
        cairn log search --identity https://github.com/org/repo/.github/workflows/rel.yml@refs/heads/main\n  \
        cairn log search --identity you@example.com --log certificates   # every certificate issued\n\n\
        --artifact, --sha256, --public-key and --email use Rekor's /api/v1/index/retrieve \
        (so they work against any Rekor v1 too); --identity uses Cairn's paged \
        /api/v1/cairn/index and also searches the certificate log.")]
    Search(SearchArgs),
    /// Prove an entry is in the log: fetch it, check its UUID is its body's hash, verify its
    /// inclusion proof and checkpoint, and prove that checkpoint consistent with a freshly
    /// fetched, verified one (which `log info`'s state file also checks); exit 1 if not.
    #[command(after_help = "Examples:\n  \
        cairn log verify --index 12 --trust-root cairn-dev/trusted_root.json\n  \
        cairn log verify --uuid 3f2a...e1 --trust-root trusted_root.json --json")]
    Verify(VerifyArgs),
    /// Prove the log's tree of FROM leaves is a prefix of its tree of TO leaves (default: the
    /// latest, verified checkpoint); both roots are proved against the verified checkpoint.
    #[command(after_help = "Examples:\n  \
        cairn log consistency --from 10 --trust-root cairn-dev/trusted_root.json\n  \
        cairn log consistency --from 10 --to 20 --trust-root trusted_root.json --json")]
    Consistency(ConsistencyArgs),
    /// Follow the log: print each new entry once its inclusion is proved, and prove every new
    /// checkpoint consistent with the one before (exit 1 the moment one is not).
    #[command(after_help = "Examples:\n  \
        cairn log tail --trust-root cairn-dev/trusted_root.json\n  \
        cairn log tail --from 0 --count 10 --trust-root trusted_root.json --json")]
    Tail(TailArgs),
}

/// Where the log is and what to trust.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// The Cairn node to ask.
    #[arg(long, value_name = "URL", env = "CAIRN_URL", default_value = DEV_URL)]
    url: String,
    /// The trusted root holding the log's key.
    #[arg(long, value_name = "FILE", env = "CAIRN_TRUST_ROOT")]
    trust_root: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The entry's index in the log, or its UUID (hex leaf hash).
    entry: String,
    /// The Cairn node to ask.
    #[arg(long, value_name = "URL", env = "CAIRN_URL", default_value = DEV_URL)]
    url: String,
    /// Verify the entry's inclusion with the log key of this trusted root before printing it.
    #[arg(long, value_name = "FILE", env = "CAIRN_TRUST_ROOT")]
    trust_root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(crate) struct SearchArgs {
    /// Entries for this file (its SHA-256).
    #[arg(long, value_name = "FILE")]
    artifact: Option<PathBuf>,
    /// Entries for this SHA-256 digest (64 hex digits, `sha256:` optional).
    #[arg(long, value_name = "HEX")]
    sha256: Option<String>,
    /// Entries signed with this PEM public key or certificate.
    #[arg(long, value_name = "PEM")]
    public_key: Option<PathBuf>,
    /// Entries whose certificate carries this e-mail address (any case).
    #[arg(long, value_name = "EMAIL")]
    email: Option<String>,
    /// Entries whose certificate carries this identity: an e-mail address or a URI (exact).
    #[arg(
        long,
        value_name = "ID",
        conflicts_with_all = ["artifact", "sha256", "public_key", "email", "operator"]
    )]
    identity: Option<String>,
    /// With --identity: the log to search, `artifacts` or `certificates`.
    #[arg(
        long,
        value_name = "LOG",
        default_value = "artifacts",
        requires = "identity"
    )]
    log: String,
    /// With several criteria: entries matching all (`and`) or any (`or`).
    #[arg(long, value_parser = ["and", "or"])]
    operator: Option<String>,
    /// The Cairn node (or Rekor) to ask.
    #[arg(long, value_name = "URL", env = "CAIRN_URL", default_value = DEV_URL)]
    url: String,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["uuid", "index"])))]
pub(crate) struct VerifyArgs {
    /// The entry's UUID (hex leaf hash, optionally after Rekor's 16-digit tree id).
    #[arg(long, value_name = "HEX")]
    uuid: Option<String>,
    /// The entry's index in the log.
    #[arg(long, value_name = "N")]
    index: Option<u64>,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ConsistencyArgs {
    /// The smaller tree size (at least 1).
    #[arg(long, value_name = "N")]
    from: u64,
    /// The larger tree size (default: the latest checkpoint's).
    #[arg(long, value_name = "M")]
    to: Option<u64>,
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The first index to print (default: the log's size now, so only new entries).
    #[arg(long, value_name = "INDEX")]
    from: Option<u64>,
    /// Stop after this many entries (default: follow forever).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Seconds between polls for a new checkpoint.
    #[arg(long, value_name = "SECONDS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=3600))]
    interval: u64,
    #[command(flatten)]
    log: LogArgs,
}

/// Runs a `cairn log` command; returns whether errors should be printed as JSON, and the
/// outcome.
pub(crate) fn run(command: &LogCommand) -> (bool, Result<(), Failure>) {
    match command {
        LogCommand::Info(args) => (args.log.json, info(&args.log)),
        LogCommand::Get(args) => (false, get(args)),
        LogCommand::Search(args) => (args.json, search(args)),
        LogCommand::Verify(args) => (args.log.json, verify(args)),
        LogCommand::Consistency(args) => (args.log.json, consistency(args)),
        LogCommand::Tail(args) => (args.log.json, tail(args)),
    }
}

fn trusted_root(args: &LogArgs) -> Result<TrustedRoot, Failure> {
    read_root(&args.trust_root)
}

fn read_root(path: &std::path::Path) -> Result<TrustedRoot, Failure> {
    let root = read_bounded(path, TRUSTED_ROOT_BYTES_MAX).map_err(input)?;
    TrustedRoot::from_json(&root)
        .with_context(|| format!("trusted root {}", path.display()))
        .map_err(input)
}

fn state_file() -> Result<PathBuf, Failure> {
    Ok(cli::sign::home().map_err(input)?.join("log-state.json"))
}

/// Prints a line, ignoring a reader that went away (`| head`).
fn say(line: impl std::fmt::Display) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stdout(), "{line}");
}

/// The latest checkpoint, verified and proved consistent with what this machine saw (and
/// recorded as seen): the anchor every other command checks against.
fn anchor(http: &Http, url: &str, root: &TrustedRoot) -> Result<Checkpoint, Failure> {
    let info = cli::log::info(http, url, root, &state_file()?).map_err(not_verified)?;
    let checkpoint = cli::log::open_checkpoint(&info.checkpoint, root).map_err(not_verified)?;
    Ok(checkpoint)
}

fn info(args: &LogArgs) -> Result<(), Failure> {
    let root = trusted_root(args)?;
    let state = state_file()?;
    let http = Http::new().map_err(service)?;
    let info = cli::log::info(&http, &args.url, &root, &state).map_err(not_verified)?;
    if args.json {
        say(serde_json::json!({
            "verified": true,
            "tree_size": info.tree_size,
            "root_hash": info.root_hash,
            "previous_tree_size": info.previous.as_ref().map(|seen| seen.tree_size),
            "checkpoint": info.checkpoint,
        }));
    } else {
        say(format_args!(
            "tree size {}, root {}",
            info.tree_size, info.root_hash
        ));
        match &info.previous {
            Some(seen) => say(format_args!(
                "consistent with size {} seen before",
                seen.tree_size
            )),
            None => say(format_args!("first checkpoint seen from {}", args.url)),
        }
    }
    Ok(())
}

fn get(args: &GetArgs) -> Result<(), Failure> {
    let url = args.url.trim_end_matches('/');
    let id = entry_id(&args.entry)?;
    let http = Http::new().map_err(service)?;
    // The anchor first, so the entry's proof is never older than the checkpoint it is held to.
    let verified = match &args.trust_root {
        Some(path) => {
            let root = read_root(path)?;
            Some((anchor(&http, url, &root)?, root))
        }
        None => None,
    };
    let mut answer = cli::log::fetch_entry(&http, url, &id)
        .map_err(service)?
        .ok_or_else(|| service(anyhow::anyhow!("the log has no entry {}", args.entry)))?;
    if let Some((anchor, root)) = &verified {
        let entry = cli::log::verify_answer(&http, url, root, anchor, &id, &answer)
            .map_err(not_verified)?;
        eprintln!(
            "verified: entry {} is in the log (inclusion proved at size {}, consistent with \
             the verified checkpoint at size {})",
            entry.log_index, entry.proof_size, anchor.tree_size
        );
    }
    cli::log::decode_bodies(&mut answer);
    say(serde_json::to_string_pretty(&answer).map_err(input)?);
    Ok(())
}

/// An entry named by its index (digits) or UUID (64 hex digits, 80 with Rekor's tree id).
fn entry_id(text: &str) -> Result<EntryId, Failure> {
    let text = text.trim();
    // A UUID first: an index has at most 20 digits, a UUID 64 (or 80).
    if matches!(text.len(), 64 | 80) && text.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Ok(EntryId::Uuid(text.to_ascii_lowercase()));
    }
    if !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) {
        return text
            .parse()
            .map(EntryId::Index)
            .map_err(|_| input(anyhow::anyhow!("index {text}: too large")));
    }
    Err(input(anyhow::anyhow!(
        "{text:?}: want an index or a UUID of 64 hex digits (80 with Rekor's tree id)"
    )))
}

/// `sha256:<hex>` from what the user gave (`sha256:` optional, any case).
fn digest_argument(text: &str) -> anyhow::Result<String> {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    if hex.len() != 64 || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        anyhow::bail!("--sha256 {text:?}: want 64 hex digits, optionally after `sha256:`");
    }
    Ok(format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn search(args: &SearchArgs) -> Result<(), Failure> {
    let url = args.url.trim_end_matches('/');
    let found = if let Some(identity) = &args.identity {
        if identity.trim().is_empty() {
            return Err(input(anyhow::anyhow!("--identity: give an e-mail or URI")));
        }
        if !["artifacts", "certificates"].contains(&args.log.as_str()) {
            return Err(input(anyhow::anyhow!(
                "--log {:?}: want artifacts or certificates",
                args.log
            )));
        }
        let http = Http::new().map_err(service)?;
        cli::log::search_paged(&http, url, &args.log, "identity", identity, |count| {
            if count >= 1000 {
                eprintln!("... {count} entries so far");
            }
        })
        .map_err(service)?
    } else {
        let mut criteria = Vec::new();
        let mut digests = Vec::new();
        if let Some(path) = &args.artifact {
            let file = std::fs::File::open(path)
                .with_context(|| format!("opening {}", path.display()))
                .map_err(input)?;
            let artifact = client::Artifact::from_reader(file)
                .with_context(|| format!("reading {}", path.display()))
                .map_err(input)?;
            let digest = artifact
                .digest(tlog::entry::HashAlgorithm::Sha256)
                .context("hashing the artifact")
                .map_err(input)?;
            digests.push(format!("sha256:{}", digest.to_hex()));
        }
        if let Some(sha256) = &args.sha256 {
            digests.push(digest_argument(sha256).map_err(input)?);
        }
        digests.dedup();
        if digests.len() > 1 {
            return Err(input(anyhow::anyhow!(
                "--artifact and --sha256 name different digests; give one"
            )));
        }
        criteria.extend(digests.into_iter().map(Criterion::Digest));
        if let Some(path) = &args.public_key {
            criteria.push(Criterion::PublicKey(
                read_bounded(path, PEM_BYTES_MAX).map_err(input)?,
            ));
        }
        if let Some(email) = &args.email {
            criteria.push(Criterion::Email(email.clone()));
        }
        if criteria.is_empty() {
            return Err(input(anyhow::anyhow!(
                "give --artifact, --sha256, --public-key, --email or --identity"
            )));
        }
        let http = Http::new().map_err(service)?;
        let and = args.operator.as_deref() == Some("and");
        cli::log::search_index(&http, url, &criteria, and).map_err(service)?
    };
    print_found(&found, args.json);
    Ok(())
}

fn print_found(found: &[Found], json: bool) {
    if json {
        say(serde_json::json!({ "count": found.len(), "entries": found }));
        return;
    }
    if found.is_empty() {
        eprintln!("no entries found");
    }
    for entry in found {
        match entry.log_index {
            Some(index) => say(format_args!("{index} {}", entry.uuid)),
            None => say(&entry.uuid),
        }
    }
}

fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let root = trusted_root(&args.log)?;
    let url = args.log.url.trim_end_matches('/');
    let id = match (&args.uuid, args.index) {
        (Some(uuid), _) => match entry_id(uuid) {
            Ok(EntryId::Uuid(uuid)) => EntryId::Uuid(uuid),
            _ => {
                return Err(input(anyhow::anyhow!(
                    "--uuid {uuid:?}: want 64 hex digits (80 with Rekor's tree id)"
                )));
            }
        },
        (None, Some(index)) => EntryId::Index(index),
        // clap's group makes this unreachable; say so if it is reached.
        (None, None) => return Err(input(anyhow::anyhow!("give --uuid or --index"))),
    };
    let http = Http::new().map_err(service)?;
    let anchor = anchor(&http, url, &root)?;
    let entry = cli::log::verify_entry(&http, url, &root, &anchor, &id)
        .map_err(not_verified)?
        .ok_or_else(|| {
            not_verified(anyhow::anyhow!(match &id {
                EntryId::Index(index) => format!("the log has no entry {index}"),
                EntryId::Uuid(uuid) => format!("the log has no entry {uuid}"),
            }))
        })?;
    if args.log.json {
        say(serde_json::json!({
            "verified": true,
            "uuid": entry.uuid,
            "log_index": entry.log_index,
            "proof_tree_size": entry.proof_size,
            "tree_size": anchor.tree_size,
            "root_hash": hex::encode(&anchor.root_hash),
            "entry": cli::log::summary(&entry.body),
        }));
    } else {
        say(format_args!(
            "OK: entry {} ({}) is in the log: inclusion proved at size {}, consistent with the \
             verified checkpoint at size {}",
            entry.log_index, entry.uuid, entry.proof_size, anchor.tree_size
        ));
    }
    Ok(())
}

fn consistency(args: &ConsistencyArgs) -> Result<(), Failure> {
    let root = trusted_root(&args.log)?;
    let url = args.log.url.trim_end_matches('/');
    if args.from == 0 {
        return Err(input(anyhow::anyhow!(
            "--from 0: every tree is consistent with the empty one; give a size of at least 1"
        )));
    }
    if args.to.is_some_and(|to| to < args.from) {
        return Err(input(anyhow::anyhow!("--to must be at least --from")));
    }
    let http = Http::new().map_err(service)?;
    let anchor = anchor(&http, url, &root)?;
    let to = args.to.unwrap_or(anchor.tree_size);
    if to > anchor.tree_size {
        return Err(not_verified(anyhow::anyhow!(
            "--to {to}: the log's verified checkpoint has only {} leaves",
            anchor.tree_size
        )));
    }
    if args.from > to {
        return Err(not_verified(anyhow::anyhow!(
            "--from {}: the log's verified checkpoint has only {to} leaves",
            args.from
        )));
    }
    let check = || -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
        let old_root = cli::log::root_at(&http, url, args.from, &anchor)?;
        let new_root = cli::log::root_at(&http, url, to, &anchor)?;
        cli::log::prove_consistent(&http, url, (args.from, &old_root), (to, &new_root))?;
        Ok((old_root, new_root))
    };
    let (old_root, new_root) = check().map_err(not_verified)?;
    if args.log.json {
        say(serde_json::json!({
            "verified": true,
            "from": args.from,
            "from_root": hex::encode(&old_root),
            "to": to,
            "to_root": hex::encode(&new_root),
            "checkpoint_tree_size": anchor.tree_size,
        }));
    } else {
        say(format_args!(
            "OK: size {} (root {}) is a prefix of size {to} (root {}), proved against the \
             verified checkpoint at size {}",
            args.from,
            hex::encode(&old_root),
            hex::encode(&new_root),
            anchor.tree_size
        ));
    }
    Ok(())
}

fn tail(args: &TailArgs) -> Result<(), Failure> {
    let root = trusted_root(&args.log)?;
    let url = args.log.url.trim_end_matches('/');
    let http = Http::new().map_err(service)?;
    // Each round's anchor is proved consistent with the last (`log info`'s state file).
    let mut anchor = anchor(&http, url, &root)?;
    let mut next = args.from.unwrap_or(anchor.tree_size);
    let mut printed = 0u64;
    if !args.log.json {
        eprintln!(
            "following {url} from index {next} (checkpoint at size {})",
            anchor.tree_size
        );
    }
    loop {
        while next < anchor.tree_size {
            if args.count.is_some_and(|count| printed >= count) {
                return Ok(());
            }
            let entry = cli::log::verify_entry(&http, url, &root, &anchor, &EntryId::Index(next))
                .map_err(not_verified)?
                .ok_or_else(|| {
                    not_verified(anyhow::anyhow!(
                        "the log's checkpoint has {} leaves but it has no entry {next}",
                        anchor.tree_size
                    ))
                })?;
            if args.log.json {
                say(serde_json::json!({
                    "log_index": entry.log_index,
                    "uuid": entry.uuid,
                    "entry": cli::log::summary(&entry.body),
                    "verified": true,
                }));
            } else {
                say(format_args!(
                    "{} {} {}",
                    entry.log_index,
                    entry.uuid,
                    cli::log::summary(&entry.body)
                ));
            }
            printed += 1;
            next += 1;
        }
        if args.count.is_some_and(|count| printed >= count) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_secs(args.interval));
        let newer = self::anchor(&http, url, &root)?;
        if newer.tree_size > anchor.tree_size && !args.log.json {
            eprintln!(
                "checkpoint at size {} verified, consistent with size {}",
                newer.tree_size, anchor.tree_size
            );
        }
        anchor = newer;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_checked_before_asking() {
        let hex = "AB".repeat(32);
        assert_eq!(
            digest_argument(&hex).unwrap(),
            format!("sha256:{}", hex.to_lowercase())
        );
        assert!(digest_argument(&format!("sha256:{hex}")).is_ok());
        assert!(digest_argument("sha256:abc").is_err());
        assert!(digest_argument(&"zz".repeat(32)).is_err());
    }
}
