//! `cairn`: Cairn's command-line client.
//!
//! It logs in (`login`), signs and attests keylessly against a Cairn deployment (`sign`,
//! `attest`), fetches a deployment's trust documents (`trust`), and verifies Sigstore bundles
//! offline (`verify`, and `verify-bundle` for the sigstore-conformance client protocol). `log`
//! (`log_command`) reads, searches and follows the log itself, verified against the trusted
//! root. `sign-image`, `attest-image` and `verify-image` do the same for container images, with
//! the signatures stored beside the image in its registry (`cli::image`).
//!
//! Exit codes, for scripts: 0 success (verified); 1 not verified (the failed check is printed);
//! 2 wrong usage; 3 an input could not be read or the trusted root is unusable; 4 the
//! deployment (issuer, CA or log) refused or could not be reached.

mod cli;

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

mod log_command;
mod witness_command;

/// Exit code: the bundle did not verify.
const EXIT_NOT_VERIFIED: u8 = 1;
/// Exit code: an input could not be read, or the trusted root is unusable.
pub(crate) const EXIT_INPUT: u8 = 3;
/// Exit code: the issuer, CA or log refused, or could not be reached (4 is a witness's or
/// monitor's split view).
const EXIT_SERVICE: u8 = 5;
/// The first node of `cairn-node dev`'s cluster.
const DEV_URL: &str = "http://127.0.0.1:7001";
/// The INSECURE dev issuer `cairn-node dev` runs.
const DEV_ISSUER: &str = "http://127.0.0.1:7301";

#[derive(Debug, Parser)]
#[command(
    name = "cairn",
    version,
    about = "Cairn's client: sign keylessly, and verify Sigstore bundles offline",
    long_about = "Cairn's client.\n\n\
        `cairn verify` checks a Sigstore bundle (from Cairn, cosign, sigstore-python, \
        sigstore-go, or the public-good instance) fully offline: the certificate chain at \
        the time the log or a timestamp authority vouches for, the signer's identity and \
        OIDC issuer, the embedded SCT, the signature or DSSE attestation, the log entry, its \
        inclusion proof and signed checkpoint, and the signed entry timestamp or RFC 3161 \
        timestamp. Trust comes only from the trusted root you give it.\n\n\
        Quick start against `cairn-node dev`:\n  \
        cairn login --dev you@example.com\n  \
        cairn sign FILE\n  \
        cairn verify FILE --bundle FILE.sigstore.json --cert-identity you@example.com \
        --cert-oidc-issuer http://127.0.0.1:7301 --trust-root cairn-dev/trusted_root.json",
    after_help = "Exit status: 0 success (verified); 1 not verified (the failed check is named); \
        2 wrong usage; 3 an input could not be read or the trusted root is unusable; \
        4 a witness or monitor found a split view (two histories of one log); \
        5 the issuer, CA or log refused or could not be reached."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Get an OIDC identity token and keep it for `sign` and `attest`.
    #[command(after_help = "Examples:\n  \
        cairn login --dev you@example.com          # from cairn-node dev's INSECURE issuer\n  \
        cairn login --issuer https://oauth2.sigstore.dev/auth   # device flow: approve in any browser\n  \
        cairn login                                # in CI: the job's own token (see below)\n  \
        cairn login --identity-token \"$TOKEN\"      # a token you already have\n  \
        cairn login --dev you@example.com --print-token | other-tool\n\n\
        Without --dev, --identity-token or --issuer, `cairn login` takes the token a CI job \
        offers: $SIGSTORE_ID_TOKEN (GitLab `id_tokens:` with `aud: sigstore`, or any system \
        that exports it), or GitHub Actions' (the job needs `permissions: id-token: write`). \
        With --issuer it runs the OAuth device flow: it prints a URL and a code, you approve \
        in a browser on any machine, and it checks the ID token against the issuer's keys.\n\n\
        The token is kept in $CAIRN_HOME/identity-token (default ~/.config/cairn), mode 0600.")]
    Login(LoginArgs),
    /// Sign files keylessly: certificate from the CA, entry in the log, bundle next to each file.
    #[command(after_help = "Examples:\n  \
        cairn sign app.tar.gz                      # writes app.tar.gz.sigstore.json\n  \
        cairn sign --url http://ca.internal:7001 a.bin b.bin --json\n  \
        cairn sign --key signing.key app.tar.gz    # a managed key: verify with --key\n\n\
        The key is ephemeral: it lives in memory for this command only. Each bundle holds \
        the certificate, the signature and the log entry with its inclusion proof, signed \
        checkpoint and signed entry timestamp, so `cairn verify` needs no network.")]
    Sign(SignArgs),
    /// Attest to a file: an in-toto statement with your predicate, signed as DSSE and logged.
    #[command(after_help = "Example:\n  \
        cairn attest app.tar.gz --predicate provenance.json --type https://slsa.dev/provenance/v1\n\
        writes app.tar.gz.att.sigstore.json; verify it with `cairn verify app.tar.gz --bundle \
        app.tar.gz.att.sigstore.json ...`.")]
    Attest(AttestArgs),
    /// Fetch a deployment's Sigstore trust documents (trusted root, signing config, both).
    #[command(after_help = "Example:\n  \
        cairn trust --url http://127.0.0.1:7001 --out trust/\n\
        writes trust/trusted_root.json (for `cairn verify --trust-root`, cosign \
        --trusted-root), trust/signing_config.json and trust/client_trust_config.json \
        (for `sigstore --trust-config`). Check what you fetched: it is what you will trust.")]
    Trust(TrustArgs),
    /// The log itself: its verified checkpoint, consistent with what you saw; its entries,
    /// searched, proved included and followed.
    #[command(subcommand)]
    Log(log_command::LogCommand),
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

    // Container images (cli::image).
    /// Sign a container image by digest; the signature is stored beside it in its registry.
    #[command(after_help = "Examples:\n  \
        cairn sign-image localhost:5000/app:v1\n  \
        cairn sign-image registry.example/team/app@sha256:9f2c...e1 --json\n\n\
        The tag is resolved to its manifest digest, and the digest is what is signed and \
        logged. The Sigstore bundle is stored as an OCI 1.1 referrer of the image where the \
        registry has the referrers API, else in cosign's tag sha256-<hex>.sig; cosign finds \
        both. Registry credentials come from Docker's config (~/.docker/config.json); plain \
        HTTP is used only for a registry on loopback.")]
    SignImage(cli::image::SignImageArgs),
    /// Attest to a container image: an in-toto statement about its digest, stored beside it.
    #[command(after_help = "Example:\n  \
        cairn attest-image localhost:5000/app:v1 --predicate provenance.json \\\n    \
        --type https://slsa.dev/provenance/v1\n\n\
        Stored as a referrer, or in cosign's tag sha256-<hex>.att; check it with \
        `cairn verify-image IMAGE --type URI ...`.")]
    AttestImage(cli::image::AttestImageArgs),
    /// Verify the signatures attached to a container image, offline, and say who signed.
    #[command(after_help = "Examples:\n  \
        cairn verify-image localhost:5000/app:v1 --cert-identity you@example.com \\\n    \
        --cert-oidc-issuer http://127.0.0.1:7301 --trust-root cairn-dev/trusted_root.json\n  \
        cairn verify-image localhost:5000/app:v1@sha256:9f2c...e1 ...   # the tag must not have moved\n  \
        cairn verify-image localhost:5000/app:v1 --type https://slsa.dev/provenance/v1 ...\n\n\
        Every signature and attestation found (referrers API, referrers tag schema, cosign's \
        .sig and .att tags) is verified as `cairn verify` does and listed with its signer. \
        Exit 0 if one signature (or, with --type, one attestation of that type) by the \
        required identity verified; 1 if none did (none attached, only other identities, a \
        digest mismatch); 5 if the registry could not be reached or has no such image.")]
    VerifyImage(cli::image::VerifyImageArgs),
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
struct LoginArgs {
    /// Get a token for EMAIL from the INSECURE development issuer of `cairn-node dev`.
    #[arg(long, value_name = "EMAIL", conflicts_with = "identity_token")]
    dev: Option<String>,
    /// The development issuer's URL.
    #[arg(long, value_name = "URL", default_value = DEV_ISSUER)]
    dev_issuer: String,
    /// Keep this identity token (a JWT from your OIDC provider or CI).
    #[arg(long, value_name = "TOKEN")]
    identity_token: Option<String>,
    /// Log in interactively at this OIDC issuer (device flow; the issuer must allow it for
    /// the client id).
    #[arg(long, value_name = "URL", conflicts_with_all = ["dev", "identity_token"])]
    issuer: Option<String>,
    /// The OAuth client id to log in as (the audience the CA expects).
    #[arg(long, value_name = "ID", default_value = "sigstore")]
    client_id: String,
    /// The client's secret, for issuers that treat the client as confidential.
    #[arg(
        long,
        value_name = "SECRET",
        env = "CAIRN_OIDC_CLIENT_SECRET",
        hide_env_values = true
    )]
    client_secret: Option<String>,
    /// Also write the token to stdout, for other tools.
    #[arg(long)]
    print_token: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ServiceArgs {
    /// The Cairn node (CA and log) to use.
    #[arg(long, value_name = "URL", env = "CAIRN_URL", default_value = DEV_URL)]
    pub(crate) url: String,
    /// Sign with this identity token instead of the one `cairn login` kept.
    #[arg(long, value_name = "TOKEN", conflicts_with = "key")]
    identity_token: Option<String>,
    /// Sign with this managed key (an unencrypted PKCS#8 PEM P-256 key) instead of keylessly:
    /// no token, no certificate; verify with `cairn verify --key PUBLIC.pem`.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// Print one JSON object per file on stdout.
    #[arg(long)]
    pub(crate) json: bool,
    /// The Rekor API to log through: `auto` follows the deployment's signing config (v2 with
    /// an RFC 3161 timestamp when it offers a Rekor v2 log and a timestamp authority). Image
    /// signatures always use v1 (cosign's tag-based layers carry the signed entry timestamp).
    #[arg(long, value_name = "VERSION", default_value = "auto")]
    pub(crate) rekor_version: cli::sign::RekorVersion,
}

#[derive(Debug, Args)]
struct SignArgs {
    /// The files to sign.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Where to write the bundle (one file only; default FILE.sigstore.json).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Debug, Args)]
struct AttestArgs {
    /// The file the statement is about (its subject).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The predicate, a JSON file.
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// The predicate type URI (for example https://slsa.dev/provenance/v1).
    #[arg(long = "type", value_name = "URI")]
    predicate_type: String,
    /// Where to write the bundle (default FILE.att.sigstore.json).
    #[arg(long, value_name = "FILE")]
    bundle: Option<PathBuf>,
    #[command(flatten)]
    service: ServiceArgs,
}

#[derive(Debug, Args)]
struct TrustArgs {
    /// The Cairn node to ask.
    #[arg(long, value_name = "URL", env = "CAIRN_URL", default_value = DEV_URL)]
    url: String,
    /// The directory to write the three documents into.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
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
        Command::Login(args) => (false, login(&args)),
        Command::Sign(args) => (args.service.json, sign(&args)),
        Command::Attest(args) => (args.service.json, attest(&args)),
        Command::Trust(args) => (false, trust(&args)),
        Command::Log(command) => log_command::run(&command),
        Command::Verify(args) => (args.json, verify(&args)),
        Command::VerifyBundle(args) => (false, verify_bundle(&args)),
        Command::Witness(command) => (false, witness_command::witness(&command)),
        Command::Monitor(args) => (false, witness_command::monitor(&args)),
        // Container images (cli::image).
        Command::SignImage(args) => (false, cli::image::sign_image(&args)),
        Command::AttestImage(args) => (false, cli::image::attest_image(&args)),
        // verify-image prints its own JSON object, failures included.
        Command::VerifyImage(args) => (false, cli::image::verify_image(&args)),
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

fn login(args: &LoginArgs) -> Result<(), Failure> {
    let token = match (&args.dev, &args.identity_token, &args.issuer) {
        (Some(email), _, _) => {
            let http = cli::net::Http::new().map_err(service)?;
            cli::sign::dev_token(&http, &args.dev_issuer, email).map_err(service)?
        }
        (None, Some(token), _) => token.trim().to_owned(),
        (None, None, Some(issuer)) => {
            let http = cli::net::Http::new().map_err(service)?;
            let login = cli::login::DeviceLogin {
                issuer,
                client_id: &args.client_id,
                client_secret: args.client_secret.as_deref(),
            };
            login
                .run(&http, |url, code| {
                    eprintln!(
                        "To log in, open this URL in a browser (on any machine):\n  {url}\n\
                         and check that it shows the code {code}. Waiting for your approval..."
                    );
                })
                .map_err(service)?
        }
        (None, None, None) => {
            let http = cli::net::Http::new().map_err(service)?;
            match cli::login::ambient_token(&http).map_err(service)? {
                Some((token, source)) => {
                    eprintln!("using the identity token from {source}");
                    token
                }
                None => {
                    return Err(input(anyhow::anyhow!(
                        "no identity token: give --issuer URL to log in with a browser, \
                         --dev EMAIL for a local dev cluster, or --identity-token TOKEN; in CI, \
                         set $SIGSTORE_ID_TOKEN or give a GitHub Actions job `id-token: write`"
                    )));
                }
            }
        }
    };
    let claims = cli::sign::claims(&token).map_err(input)?;
    let path = cli::sign::cache_token(&token).map_err(input)?;
    if args.print_token {
        println!("{token}");
    }
    let who = claims["email"]
        .as_str()
        .or_else(|| claims["sub"].as_str())
        .unwrap_or("?");
    eprintln!(
        "logged in as {who} ({}); token kept in {}",
        claims["iss"].as_str().unwrap_or("?"),
        path.display()
    );
    Ok(())
}

fn sign(args: &SignArgs) -> Result<(), Failure> {
    if args.bundle.is_some() && args.files.len() > 1 {
        return Err(input(anyhow::anyhow!(
            "--bundle names one bundle: sign one file with it"
        )));
    }
    let http = cli::net::Http::new().map_err(service)?;
    let signer = signer(&http, &args.service)?;
    let route = cli::sign::LogRoute::resolve(&http, &args.service.url, args.service.rekor_version)
        .map_err(service)?;
    if !args.service.json && args.service.key.is_none() {
        eprintln!(
            "certificate issued for {} ({})",
            signer.identity, signer.issuer
        );
    }
    for (position, file) in args.files.iter().enumerate() {
        if !args.service.json && args.files.len() > 1 {
            eprintln!(
                "[{}/{}] signing {}",
                position + 1,
                args.files.len(),
                file.display()
            );
        }
        let bundle = signer.sign_file(&http, &route, file).map_err(service)?;
        let path = args
            .bundle
            .clone()
            .unwrap_or_else(|| with_suffix(file, ".sigstore.json"));
        report(&signer, file, &path, &bundle, args.service.json)?;
    }
    Ok(())
}

fn attest(args: &AttestArgs) -> Result<(), Failure> {
    let predicate = read_bounded(&args.predicate, 16 * 1024 * 1024).map_err(input)?;
    let predicate: serde_json::Value = serde_json::from_slice(&predicate)
        .with_context(|| format!("predicate {}", args.predicate.display()))
        .map_err(input)?;
    let http = cli::net::Http::new().map_err(service)?;
    let signer = signer(&http, &args.service)?;
    let route = cli::sign::LogRoute::resolve(&http, &args.service.url, args.service.rekor_version)
        .map_err(service)?;
    let bundle = signer
        .attest_file(&http, &route, &args.file, &args.predicate_type, &predicate)
        .map_err(service)?;
    let path = args
        .bundle
        .clone()
        .unwrap_or_else(|| with_suffix(&args.file, ".att.sigstore.json"));
    report(&signer, &args.file, &path, &bundle, args.service.json)
}

/// The managed key, or an ephemeral key certified for the identity token.
pub(crate) fn signer(
    http: &cli::net::Http,
    args: &ServiceArgs,
) -> Result<cli::sign::Signer, Failure> {
    if let Some(key) = &args.key {
        return cli::sign::Signer::from_key_file(key).map_err(input);
    }
    let token = cli::sign::load_token(args.identity_token.as_deref()).map_err(input)?;
    cli::sign::Signer::new(http, &args.url, &token).map_err(service)
}

/// Writes a bundle and says so.
fn report(
    signer: &cli::sign::Signer,
    file: &Path,
    path: &Path,
    bundle: &serde_json::Value,
    json: bool,
) -> Result<(), Failure> {
    cli::sign::write_json(path, bundle).map_err(input)?;
    let log_index = &bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"];
    if json {
        let output = serde_json::json!({
            "file": file,
            "bundle": path,
            "identity": signer.identity,
            "issuer": signer.issuer,
            "log_index": log_index,
        });
        println!("{output}");
    } else {
        println!(
            "signed {} as {}: log entry {}, bundle {}",
            file.display(),
            signer.identity,
            log_index.as_str().unwrap_or("?"),
            path.display()
        );
    }
    Ok(())
}

fn with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn trust(args: &TrustArgs) -> Result<(), Failure> {
    let http = cli::net::Http::new().map_err(service)?;
    let url = format!(
        "{}/trust/client_trust_config.json",
        args.url.trim_end_matches('/')
    );
    let config = http.get_json(&url).map_err(service)?;
    // Refuse what `cairn verify` could not use, before writing anything.
    let root = serde_json::to_vec(&config["trustedRoot"]).map_err(input)?;
    TrustedRoot::from_json(&root)
        .context("the deployment's trusted root")
        .map_err(input)?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))
        .map_err(input)?;
    for (name, document) in [
        ("trusted_root.json", &config["trustedRoot"]),
        ("signing_config.json", &config["signingConfig"]),
        ("client_trust_config.json", &config),
    ] {
        cli::sign::write_json(&args.out.join(name), document).map_err(input)?;
    }
    println!(
        "wrote trusted_root.json, signing_config.json and client_trust_config.json to {}",
        args.out.display()
    );
    Ok(())
}

fn verify(args: &VerifyArgs) -> Result<(), Failure> {
    let policy = policy(
        args.key.as_deref(),
        args.cert_identity.as_deref(),
        args.cert_oidc_issuer.as_deref(),
    )?;
    let (bundle, verified) = run(&args.artifact, &args.bundle, &args.trust_root, &policy)?;
    let witnesses = match &args.witness_policy {
        Some(path) => Some(witness_policy(path, &bundle)?),
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

/// Checks the checkpoints of `bundle`, the one just verified, against a tlog-policy file. Not
/// the bundle file read again: it may have changed since.
fn witness_policy(path: &Path, bundle: &Bundle) -> Result<Vec<Vec<String>>, Failure> {
    let policy = read_witness_policy(path)?;
    client::witnessed::check_bundle(bundle, &policy).map_err(not_verified)
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

/// Reads and verifies the bundle; returns it with what verified, so that later checks use
/// the bundle that verified.
fn run(
    artifact: &str,
    bundle: &Path,
    trust_root: &Path,
    policy: &Policy,
) -> Result<(Bundle, Verified), Failure> {
    let root = read_trusted_root(trust_root)?;
    let bundle_bytes = read_bounded(bundle, BUNDLE_BYTES_MAX).map_err(input)?;
    let artifact = read_artifact(artifact).map_err(input)?;
    let bundle = Bundle::from_json(&bundle_bytes).map_err(not_verified)?;
    let verified =
        client::verify::verify(&bundle, &root, &artifact, policy).map_err(not_verified)?;
    Ok((bundle, verified))
}

/// The `trusted_root.json` at `path` (`--trust-root`).
pub(crate) fn read_trusted_root(path: &Path) -> Result<TrustedRoot, Failure> {
    let root = read_bounded(path, TRUSTED_ROOT_BYTES_MAX).map_err(input)?;
    TrustedRoot::from_json(&root)
        .with_context(|| format!("trusted root {}", path.display()))
        .map_err(input)
}

/// The C2SP tlog-policy file at `path` (`--witness-policy`).
pub(crate) fn read_witness_policy(path: &Path) -> Result<tlog::policy::Policy, Failure> {
    let text = read_bounded(path, tlog::policy::POLICY_BYTES_MAX).map_err(input)?;
    let text = String::from_utf8(text)
        .with_context(|| format!("{} is not UTF-8", path.display()))
        .map_err(input)?;
    tlog::policy::Policy::parse(&text)
        .with_context(|| format!("witness policy {}", path.display()))
        .map_err(input)
}

pub(crate) fn policy(
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
pub(crate) fn read_bounded(path: &Path, max: usize) -> anyhow::Result<Vec<u8>> {
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

pub(crate) fn service(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_SERVICE,
        error: error.into(),
    }
}

pub(crate) fn not_verified(error: impl Into<anyhow::Error>) -> Failure {
    Failure {
        code: EXIT_NOT_VERIFIED,
        error: error.into(),
    }
}
