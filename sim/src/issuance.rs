//! The keyless CA in the simulation: every node runs the production `KeylessCa` (built by
//! `Node::start` from the settings [`SimCa::settings`] makes, as `cairn-node` builds it from its
//! `[ca]` section), and clients ask the node they think leads for certificates
//! through `KeylessCa::issue`, the same path the HTTP route takes after it has verified the
//! token and the proof of possession (those are checked in `ca`'s and `node`'s own tests; the
//! simulator has no OpenID provider, so it skips straight to a verified identity).
//!
//! The invariant it serves (docs/ARCHITECTURE.md, "Invariants of the log" 6): no certificate
//! reaches a client before its entry is committed. A returned certificate's two leaves (the
//! precertificate and the certificate) are recorded as acknowledged appends of the
//! certificate log, so [`crate::invariants::durability`] holds them to it at every tick and at
//! the end, on every node, through crashes and elections.

use std::sync::{Arc, OnceLock};

use node::keyless::IssueError;
use node::types::LogName;

use crate::rng::SimRng;

/// A fetcher for a CA that verifies no tokens here: every fetch fails.
#[derive(Debug)]
pub struct NoFetch;

impl ca::oidc::Fetch for NoFetch {
    fn get<'a>(
        &'a self,
        url: &'a str,
        _limit: usize,
    ) -> ca::oidc::BoxFuture<'a, Result<Vec<u8>, ca::oidc::FetchError>> {
        Box::pin(async move {
            Err(ca::oidc::FetchError(format!(
                "the simulator fetches nothing ({url})"
            )))
        })
    }
}

/// The cluster's CA keys: one root, intermediate and SCT key shared by every node, as
/// `cairn-node init` makes them.
#[derive(Clone)]
pub struct SimCa {
    made: &'static ca::cert::NewCa,
    ct_key: ca::ct::CtKey,
}

impl std::fmt::Debug for SimCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCa").finish_non_exhaustive()
    }
}

/// The cluster's CA. The SCT key comes from the seed; the root and intermediate keys come from
/// rcgen's generator, once per process (their bytes differ from process to process, and
/// nothing in a run's events depends on them; making them is a P-384 and a P-256 key
/// generation, a few percent of a short run).
pub fn keyless_ca(rng: &mut SimRng) -> Result<SimCa, String> {
    static MADE: OnceLock<Result<ca::cert::NewCa, String>> = OnceLock::new();
    let made = MADE
        .get_or_init(|| {
            ca::cert::new_ca("Cairn simulation", 1_700_000_000).map_err(|e| e.to_string())
        })
        .as_ref()?;
    let mut scalar = [0u8; 32];
    for chunk in scalar.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
    }
    // Clear the top bit: the scalar is then below the group order.
    scalar[0] &= 0x7f;
    scalar[31] |= 1;
    let ct_key = ca::ct::CtKey::from_scalar(&scalar).map_err(|e| e.to_string())?;
    Ok(SimCa { made, ct_key })
}

impl SimCa {
    /// A node's CA settings over these keys, writing to `log`, with no token issuer (the
    /// simulated clients skip to a verified identity) and no rate limit.
    pub fn settings(&self, log: LogName) -> Result<node::config::CaSettings, String> {
        let authority = ca::cert::Authority::load(
            &self.made.root_pem,
            &self.made.intermediate_pem,
            &self.made.intermediate_key_pem,
        )
        .map_err(|e| e.to_string())?;
        Ok(node::config::CaSettings {
            material: node::keyless::Rotating::fixed(node::keyless::CaMaterial {
                authority,
                ct_key: self.ct_key.clone(),
            }),
            issuers: Vec::new(),
            requests_per_identity_per_minute: u32::MAX,
            log,
            tsa: None,
        })
    }
}

/// A P-256 public key the simulated clients certify (DER SubjectPublicKeyInfo). Which key is
/// certified does not matter to the log; one fixed key keeps the runs replayable.
/// Derived once per process: a scalar multiplication per request showed in profiles.
pub fn client_key() -> Result<Vec<u8>, String> {
    use p256::pkcs8::EncodePublicKey as _;
    static SPKI: OnceLock<Result<Vec<u8>, String>> = OnceLock::new();
    SPKI.get_or_init(|| {
        let secret = p256::SecretKey::from_slice(&[7u8; 32]).map_err(|e| e.to_string())?;
        secret
            .public_key()
            .to_public_key_der()
            .map(|der| der.as_bytes().to_vec())
            .map_err(|e| e.to_string())
    })
    .clone()
}

/// What one issuance request got.
#[derive(Debug)]
pub enum Issuance {
    /// A certificate, logged: (precertificate index, leaf), (certificate index, leaf), and the
    /// signed checkpoints that covered them.
    Issued {
        /// The precertificate entry.
        precertificate: (u64, Vec<u8>, Arc<str>),
        /// The certificate entry.
        certificate: (u64, Vec<u8>, Arc<str>),
    },
    /// Not the leader: ask it.
    NotLeader,
    /// No certificate (not logged in time, or at all).
    Refused(String),
}

/// Asks node `node` for a certificate for `email`, at the node's time, through
/// `node::service::issue_certificate` (what the HTTP route calls once it has verified the token
/// and the proof of possession), whose serial comes from the node's randomness seam (seeded by
/// the run).
pub async fn request(node: &node::node::Node, email: &str, spki_der: &[u8]) -> Issuance {
    let identity = ca::identity::Identity {
        san: ca::identity::San::Email(email.to_string()),
        issuer: "https://oidc.sim.invalid".into(),
        subject: email.to_string(),
        challenge: email.to_string(),
        extensions: Vec::new(),
    };
    let now_ms = node.clock().now_unix_ms();
    match node::service::issue_certificate(node, identity, spki_der.to_vec(), now_ms).await {
        Ok((_, issued)) => Issuance::Issued {
            precertificate: (
                issued.precertificate.index,
                issued.precertificate_leaf,
                issued.precertificate.checkpoint,
            ),
            certificate: (
                issued.logged.index,
                issued.certificate_leaf,
                issued.logged.checkpoint,
            ),
        },
        Err(IssueError::NotLeader) => Issuance::NotLeader,
        Err(error) => Issuance::Refused(error.to_string()),
    }
}
