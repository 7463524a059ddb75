//! The verifying client: the library behind the `cairn` command.
//!
//! Today it is Cairn's offline Sigstore verifier. Given a Sigstore bundle, a `trusted_root.json`
//! and an artifact (or only its SHA-256 digest), [`verify_bundle`] checks everything a
//! sigstore-go or sigstore-python verifier checks, without touching the network: the signing
//! certificate's chain and identity at the times the logs and timestamp authorities vouch for,
//! the embedded SCT, the signature or DSSE envelope, the log entry's body against the bundle,
//! its inclusion proof under a signed checkpoint, the signed entry timestamp and RFC 3161
//! timestamps. Every failure is a typed error naming the check ([`Error`], [`VerifyError`]).
//! Signing, `login`, and the online log commands are still to come.
//!
//! Module map: [`bundle`] and [`trust_root`] parse the two input formats strictly;
//! [`verify`] runs the checks in order, using [`certificate`] (chain, Fulcio profile, identity,
//! SCT), [`timestamp`] (RFC 3161), [`log_entry`] (body, inclusion, checkpoint, SET) and
//! [`key`] (signature algorithms); [`witnessed`] checks the checkpoints' witness cosignatures
//! against a C2SP tlog-policy (`cairn verify --witness-policy`). Merkle proofs, signed notes, checkpoints and canonical Rekor
//! bodies come from `tlog`.
//!
//! The crate depends on `tlog` and never on `node`: it trusts nothing a server says until it
//! has verified it, and the trusted root is its only source of trust.

#![warn(missing_docs)]

pub mod bundle;
pub mod certificate;
mod der;
pub mod key;
pub mod log_entry;
mod protojson;
pub mod time;
pub mod timestamp;
pub mod trust_root;
pub mod verify;
pub mod witnessed;

pub use bundle::{Bundle, BundleError};
pub use der::DerError;
pub use trust_root::{TrustRootError, TrustedRoot};
pub use verify::{Artifact, Policy, Verified, VerifyError};

/// Why [`verify_bundle`] refused: the input that failed to parse, or the check that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bundle could not be parsed.
    #[error("bundle: {0}")]
    Bundle(#[from] BundleError),
    /// The trusted root could not be parsed.
    #[error("trusted root: {0}")]
    TrustedRoot(#[from] TrustRootError),
    /// A verification check failed.
    #[error(transparent)]
    Verify(#[from] VerifyError),
}

/// Parses `bundle_json` and `trusted_root_json` and verifies the bundle for `artifact` under
/// `policy`.
pub fn verify_bundle(
    bundle_json: &[u8],
    trusted_root_json: &[u8],
    artifact: &Artifact,
    policy: &Policy,
) -> Result<Verified, Error> {
    let root = TrustedRoot::from_json(trusted_root_json)?;
    let bundle = Bundle::from_json(bundle_json)?;
    Ok(verify::verify(&bundle, &root, artifact, policy)?)
}
