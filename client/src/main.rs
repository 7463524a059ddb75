//! `cairn`: Cairn's command-line client.
//!
//! Today it verifies Sigstore bundles offline (`verify`, and `verify-bundle` for the
//! sigstore-conformance client protocol). The command enum leaves room for `login`, `sign`,
//! `attest`, `log` and `trust`, which are not implemented yet and so are not offered.
//!
//! Exit codes, for scripts: 0 verified; 1 not verified (the failed check is printed);
//! 2 wrong usage; 3 an input could not be read or the trusted root is unusable.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use client::bundle::BUNDLE_BYTES_MAX;
use client::key::PublicKey;
use client::trust_root::TRUSTED_ROOT_BYTES_MAX;
use client::verify::TimeSource;
use client::{Artifact, Bundle, Policy, TrustedRoot, Verified};

mod witness_command;

/// Exit code: the bundle did not verify.
const EXIT_NOT_VERIFIED: u8 = 1;
/// Exit code: an input could not be read, or the trusted root is unusable.
pub(crate) const EXIT_INPUT: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn's client: verify Sigstore bundles offline, against a trusted root",
    long_about = "Cairn's client.\n\n\
        `cairn verify` checks a Sigstore bundle (from Cairn, cosign, sigstore-python, \
        sigstore-go, or the public-good instance) fully offline: the certificate chain at \
        the time the log or a timestamp authority vouches for, the signer's identity and \
        OIDC issuer, the embedded SCT, the signature or DSSE attestation, the log entry, its \
        inclusion proof and signed checkpoint, and the signed entry timestamp or RFC 3161 \
        timestamp. Trust comes only from the trusted root you give it.",
    after_help = "Exit status: 0 verified; 1 not verified (the failed check is named); \
        2 wrong usage; 3 an input could not be read or the trusted root is unusable."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// `login`, `sign`, `attest`, `log` and `trust` will join these.
#[derive(Debug, Subcommand)]
enum Command {
    /// Verify an artifact (or its sha256 digest) against a Sigstore bundle, offline.
    #[command(after_help = "Examples:\n  \
        cairn verify app.tar.gz --bundle app.tar.gz.sigstore.json \\\n    \
        --cert-identity you@example.com --cert-oidc-issuer https://accounts.example.com \\\n    \
        --trust-root trusted_root.json\n  \
        cairn verify sha256:a0cfc7...01bf --bundle b.json --key cosign.pub --trust-root tr.json --json")]
    Verify(VerifyArgs),
    /// The sigstore-conformance client protocol's `verify-bundle` (exit 0 only if verified).
    #[command(name = "verify-bundle")]
    VerifyBundle(VerifyBundleArgs),
    /// Run a C2SP tlog-witness: cosign checkpoints pushed to it or polled from logs, and
    /// compare notes with other witnesses (exit 4 on a split view).
    #[command(subcommand)]
    Witness(witness_command::WitnessCommand),
    /// Follow a log, verify every checkpoint's consistency, and report every entry whose
    /// certificate names an identity, with its inclusion proof (exit 4 on a split view).
    Monitor(witness_command::MonitorArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The artifact file, or `sha256:<64 hex digits>` when you only have its digest (a file
    /// of that name, if one exists, wins).
    artifact: String,
    /// The Sigstore bundle (`.sigstore.json`).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The identity the certificate must carry: an e-mail address or URI, matched exactly
    /// against its subject alternative names.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    cert_identity: Option<String>,
    /// The OIDC issuer that must have vouched for that identity, matched exactly.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    cert_oidc_issuer: Option<String>,
    /// The Sigstore `trusted_root.json` to trust (logs, CAs, CT logs, timestamp authorities).
    #[arg(long, value_name = "FILE", env = "CAIRN_TRUST_ROOT")]
    trust_root: PathBuf,
    /// Verify a bundle signed with a managed key, given as a PEM public key, instead of a
    /// certificate identity.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Also require the checkpoint of every log entry to satisfy this C2SP tlog-policy file:
    /// signed by a listed log and cosigned by a quorum of listed witnesses.
    #[arg(long, value_name = "FILE")]
    witness_policy: Option<PathBuf>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct VerifyBundleArgs {
    /// The artifact file, or `sha256:<64 hex digits>`.
    artifact: String,
    /// The Sigstore bundle.
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// The expected certificate identity (exact SAN match).
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    certificate_identity: Option<String>,
    /// The expected OIDC issuer.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    certificate_oidc_issuer: Option<String>,
    /// A PEM public key, for bundles signed with a managed key.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The trusted root. Required: cairn ships no built-in trust.
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// Use Sigstore's staging instance (refused: it needs a built-in trusted root).
    #[arg(long)]
    staging: bool,
}

/// A failure and the exit code it maps to.
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) error: anyhow::Error,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let (json, result) = match cli.command {
        Command::Verify(args) => (args.json, verify(&args)),
        Command::VerifyBundle(args) => (false, verify_bundle(&args)),
        Command::Witness(command) => (false, witness_command::witness(&command)),
        Command::Monitor(args) => (false, witness_command::monitor(&args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            if json {
                let output = serde_json::json!({
                    "verified": false,
                    "error": format!("{:#}", failure.error),
                });
                println!("{output}");
            } else {
                eprintln!("cairn: {:#}", failure.error);
            }
            ExitCode::from(failure.code)
        }
    }
}

fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let policy = policy(
        args.key.as_deref(),
        args.cert_identity.as_deref(),
        args.cert_oidc_issuer.as_deref(),
    )?;
    let verified = run(&args.artifact, &args.bundle, &args.trust_root, &policy)?;
    let witnesses = match &args.witness_policy {
        Some(path) => Some(witness_policy(path, &args.bundle)?),
        None => None,
    };
    if args.json {
        let times: Vec<_> = verified
            .times
            .iter()
            .map(|(time, source)| {
                serde_json::json!({
                    "time": time.to_string(),
                    "source": match source {
                        TimeSource::SignedEntryTimestamp => "signed_entry_timestamp",
                        TimeSource::Rfc3161 => "rfc3161_timestamp",
                    },
                })
            })
            .collect();
        let output = serde_json::json!({
            "verified": true,
            "artifact": args.artifact,
            "identity": verified.identity,
            "issuer": verified.issuer,
            "times": times,
            "log_indices": verified.log_indices,
            "witnesses": witnesses,
        });
        println!("{output}");
    } else {
        let signer = match (&verified.identity, &verified.issuer) {
            (Some(identity), Some(issuer)) => format!("{identity} ({issuer})"),
            _ => "the managed key".to_owned(),
        };
        println!("OK: {} signed by {signer}", args.artifact);
        if let Some(witnesses) = &witnesses {
            for (entry, names) in witnesses.iter().enumerate() {
                println!("OK: log entry {entry} cosigned by {}", names.join(", "));
            }
        }
    }
    Ok(())
}

/// Checks the (already verified) bundle's checkpoints against a tlog-policy file.
fn witness_policy(path: &Path, bundle: &Path) -> Result<Vec<Vec<String>>, Failure> {
    let text = read_bounded(path, tlog::policy::POLICY_BYTES_MAX).map_err(input)?;
    let text = String::from_utf8(text)
        .with_context(|| format!("{} is not UTF-8", path.display()))
        .map_err(input)?;
    let policy = tlog::policy::Policy::parse(&text)
        .with_context(|| format!("witness policy {}", path.display()))
        .map_err(input)?;
    let bundle = read_bounded(bundle, BUNDLE_BYTES_MAX).map_err(input)?;
    let bundle = Bundle::from_json(&bundle).map_err(not_verified)?;
    client::witnessed::check_bundle(&bundle, &policy).map_err(not_verified)
}

fn verify_bundle(args: &VerifyBundleArgs) -> Result<(), Failure> {
    let trusted_root = match (&args.trusted_root, args.staging) {
        (Some(path), _) => path,
        (None, true) => {
            return Err(input(anyhow::anyhow!(
                "--staging needs a built-in staging trusted root, which cairn does not have; \
                 pass --trusted-root"
            )));
        }
        (None, false) => {
            return Err(input(anyhow::anyhow!(
                "cairn has no built-in trusted root; pass --trusted-root"
            )));
        }
    };
    let policy = policy(
        args.key.as_deref(),
        args.certificate_identity.as_deref(),
        args.certificate_oidc_issuer.as_deref(),
    )?;
    run(&args.artifact, &args.bundle, trusted_root, &policy)?;
    Ok(())
}

fn run(
    artifact: &str,
    bundle: &Path,
    trust_root: &Path,
    policy: &Policy,
) -> Result<Verified, Failure> {
    let root = read_bounded(trust_root, TRUSTED_ROOT_BYTES_MAX).map_err(input)?;
    let root = TrustedRoot::from_json(&root)
        .with_context(|| format!("trusted root {}", trust_root.display()))
        .map_err(input)?;
    let bundle_bytes = read_bounded(bundle, BUNDLE_BYTES_MAX).map_err(input)?;
    let artifact = read_artifact(artifact).map_err(input)?;
    let bundle = Bundle::from_json(&bundle_bytes).map_err(not_verified)?;
    client::verify::verify(&bundle, &root, &artifact, policy).map_err(not_verified)
}

fn policy(
    key: Option<&Path>,
    identity: Option<&str>,
    issuer: Option<&str>,
) -> Result<Policy, Failure> {
    match (key, identity, issuer) {
        (Some(path), _, _) => {
            let pem = read_bounded(path, 64 * 1024).map_err(input)?;
            let key = PublicKey::from_pem(&pem)
                .with_context(|| format!("key {}", path.display()))
                .map_err(input)?;
            Ok(Policy::Key(key))
        }
        (None, Some(identity), Some(issuer)) => Ok(Policy::Identity {
            identity: identity.to_owned(),
            issuer: issuer.to_owned(),
        }),
        // clap's `required_unless_present` makes this unreachable; say so if it is reached.
        _ => Err(input(anyhow::anyhow!(
            "give either a certificate identity and OIDC issuer, or --key"
        ))),
    }
}

/// The artifact argument: a digest or a file to hash. As the conformance protocol says, it is
/// a digest only if it is `sha256:` and 64 hex digits and no file of that name exists;
/// anything else is a path.
fn read_artifact(argument: &str) -> anyhow::Result<Artifact> {
    if let Some(hex) = argument.strip_prefix("sha256:") {
        let mut digest = [0u8; 32];
        if hex::decode_to_slice(hex, &mut digest).is_ok() && !Path::new(argument).exists() {
            return Ok(Artifact::from_sha256(digest));
        }
    }
    let file = File::open(argument).with_context(|| format!("opening artifact {argument}"))?;
    Artifact::from_reader(file).with_context(|| format!("reading artifact {argument}"))
}

/// Reads a whole file of at most `max` bytes.
fn read_bounded(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::new();
    file.take(limit)
        .read_to_end(&mut bytes)
        .with_context(|| format!("reading {}", path.display()))?;
    if bytes.len() > max {
        anyhow::bail!("{} is larger than {max} bytes", path.display());
    }
    Ok(bytes)
}

pub(crate) fn input(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_INPUT,
        error: error.into(),
    }
}

fn not_verified(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_NOT_VERIFIED,
        error: error.into(),
    }
}
