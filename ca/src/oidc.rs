//! OpenID Connect ID token verification against an issuer allow-list.
//!
//! The token's unverified `iss` only routes it: it must equal an allow-listed issuer URL
//! exactly (no normalisation, no patterns), and nothing is fetched for any other value, so a
//! token cannot make the CA reach out to an address of the caller's choosing. For a listed
//! issuer, the discovery document and JWKS are fetched through the [`Fetch`] seam (the node
//! supplies its HTTP client), cached for an hour, and refreshed early when a token names a key
//! id the cached set lacks. Fetches are single-flight per issuer (concurrent requests wait for
//! the one fetch) and begin at most once per 10 s per issuer whatever the cache holds (empty,
//! stale or failing): between attempts a failure is answered from memory (a negative cache),
//! and keys whose refresh fails stay usable for up to a day. The openidconnect crate checks
//! the signature (asymmetric algorithms only), `iss`, `aud` (exactly the issuer's client id,
//! default `sigstore`, and no other audience) and `exp`; this module adds `iat` and `nbf` in the
//! future, each with [`CLOCK_SKEW_SECONDS`] of leeway, and [`crate::identity`] the claims rules.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use openidconnect::core::{
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    ClaimsVerificationError, ClientId, IdToken, IdTokenVerifier, IssuerUrl, JsonWebKey as _, Nonce,
    SignatureVerificationError,
};
use serde::{Deserialize, Serialize};

use crate::TokenError;
use crate::identity::{CiClaims, Identity, IdentityKind, VerifiedClaims};

/// Longest token accepted, in bytes.
pub const TOKEN_BYTES_MAX: usize = 16 * 1024;
/// Leeway on `exp`, `iat` and `nbf`.
pub const CLOCK_SKEW_SECONDS: u64 = 60;
/// Largest discovery document or JWKS read.
pub const DOCUMENT_BYTES_MAX: usize = 256 * 1024;
/// How long discovery and keys are trusted before they are fetched again.
const KEYS_TTL_SECONDS: u64 = 3600;
/// Shortest time between two fetches for one issuer: a fetch for unknown key ids, of stale keys
/// or after a failure.
const REFRESH_INTERVAL_SECONDS: u64 = 10;
/// Longest time keys stay usable past their TTL while every refresh fails.
const STALE_KEYS_MAX_SECONDS: u64 = 24 * 3600;
/// Most verified tokens remembered (see [`TokenVerifier::verify`]).
const VERIFIED_MAX: usize = 10_000;

/// One allow-listed issuer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer URL, compared byte for byte with the token's `iss`.
    pub url: String,
    /// The audience tokens must carry (`sigstore` unless set).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// How the issuer's tokens name their subject.
    pub kind: IdentityKind,
}

fn default_client_id() -> String {
    "sigstore".into()
}

/// A boxed future, as [`Fetch`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An HTTP GET failed: connection, status other than 200, or a body over its limit.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FetchError(pub String);

/// The seam through which the verifier reads discovery documents and key sets.
pub trait Fetch: Send + Sync {
    /// GETs `url` and returns a 200 response's body, at most `limit` bytes. Must not follow
    /// redirects.
    fn get<'a>(&'a self, url: &'a str, limit: usize) -> BoxFuture<'a, Result<Vec<u8>, FetchError>>;
}

struct Keys {
    set: CoreJsonWebKeySet,
    fetched_at: u64,
}

/// What the verifier knows of one issuer's keys.
#[derive(Default)]
struct IssuerKeys {
    /// The last key set fetched.
    keys: Option<Arc<Keys>>,
    /// When the last fetch began, and why it failed if it did.
    attempted_at: Option<u64>,
    failure: Option<String>,
    /// A fetch is under way: its outcome is not known yet.
    in_flight: bool,
}

/// Verifies ID tokens of the allow-listed issuers.
pub struct TokenVerifier {
    issuers: Vec<IssuerConfig>,
    fetch: Arc<dyn Fetch>,
    keys: Mutex<HashMap<String, IssuerKeys>>,
    /// One lock per issuer, held across a fetch: concurrent requests wait for it.
    fetching: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
    /// Tokens already verified, by SHA-256 of the token: the identity and `exp`.
    verified: Mutex<HashMap<[u8; 32], (Identity, u64)>>,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenVerifier")
            .field("issuers", &self.issuers)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct UnverifiedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

#[derive(Deserialize)]
struct UnverifiedPayload {
    iss: String,
    #[serde(default)]
    nbf: Option<serde_json::Value>,
}

type Token =
    IdToken<CiClaims, CoreGenderClaim, CoreJweContentEncryptionAlgorithm, CoreJwsSigningAlgorithm>;

fn decode_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed(format!("{what} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|error| TokenError::Malformed(format!("{what}: {error}")))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned cache only means a panic elsewhere mid-insert; the map is still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn date(unix_seconds: u64) -> chrono::DateTime<chrono::Utc> {
    let seconds = i64::try_from(unix_seconds).unwrap_or(i64::MAX / 1000);
    chrono::DateTime::from_timestamp(seconds, 0).unwrap_or_default()
}

impl TokenVerifier {
    /// A verifier of tokens from `issuers`, fetching through `fetch`.
    pub fn new(issuers: Vec<IssuerConfig>, fetch: Arc<dyn Fetch>) -> TokenVerifier {
        let fetching = issuers
            .iter()
            .map(|issuer| (issuer.url.clone(), Arc::default()))
            .collect();
        TokenVerifier {
            issuers,
            fetch,
            keys: Mutex::new(HashMap::new()),
            fetching,
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The allow-listed issuers.
    pub fn issuers(&self) -> &[IssuerConfig] {
        &self.issuers
    }

    /// Verifies `token` at `now_unix_seconds` and maps it to a certificate identity.
    ///
    /// A token that verified once is remembered (by its SHA-256, up to 10,000 tokens) until its
    /// `exp` passes: every check but `exp` gives the same answer for the same bytes later, and
    /// the signature check is most of the CA's work for a client that reuses its token.
    pub async fn verify(&self, token: &str, now_unix_seconds: u64) -> Result<Identity, TokenError> {
        use sha2::Digest as _;
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::TooLarge(TOKEN_BYTES_MAX));
        }
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let skew = CLOCK_SKEW_SECONDS;
        if let Some((identity, expires)) = lock(&self.verified).get(&digest)
            && now_unix_seconds.saturating_sub(skew) < *expires
        {
            return Ok(identity.clone());
        }
        let (identity, expires) = self.verify_uncached(token, now_unix_seconds).await?;
        let mut verified = lock(&self.verified);
        if verified.len() >= VERIFIED_MAX {
            verified.retain(|_, (_, expires)| now_unix_seconds.saturating_sub(skew) < *expires);
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
        }
        verified.insert(digest, (identity.clone(), expires));
        Ok(identity)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        now_unix_seconds: u64,
    ) -> Result<(Identity, u64), TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::TooLarge(TOKEN_BYTES_MAX));
        }
        // Count before splitting, so a token of many dots costs nothing.
        if token.bytes().filter(|byte| *byte == b'.').count() != 2 {
            return Err(TokenError::Malformed(
                "a JWT has exactly three dot-separated parts".into(),
            ));
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
            return Err(TokenError::Malformed("a JWT has three parts".into()));
        };
        let header: UnverifiedHeader = decode_part(header, "JOSE header")?;
        let payload: UnverifiedPayload = decode_part(payload, "claims")?;
        let Some(issuer) = self.issuers.iter().find(|issuer| issuer.url == payload.iss) else {
            return Err(TokenError::UnknownIssuer(payload.iss));
        };
        if header.alg == "none" || header.alg.starts_with("HS") {
            return Err(TokenError::UnsupportedAlgorithm(header.alg));
        }
        let keys = self
            .keys(issuer, header.kid.as_deref(), now_unix_seconds)
            .await?;
        let issuer_url = IssuerUrl::new(issuer.url.clone())
            .map_err(|error| TokenError::Discovery(format!("issuer URL: {error}")))?;
        let skew = CLOCK_SKEW_SECONDS;
        let verifier: IdTokenVerifier<'_, CoreJsonWebKey> = IdTokenVerifier::new_public_client(
            ClientId::new(issuer.client_id.clone()),
            issuer_url,
            keys.set.clone(),
        )
        .set_allowed_algs([
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha384,
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha512,
            CoreJwsSigningAlgorithm::RsaSsaPssSha256,
            CoreJwsSigningAlgorithm::RsaSsaPssSha384,
            CoreJwsSigningAlgorithm::RsaSsaPssSha512,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EcdsaP384Sha384,
            CoreJwsSigningAlgorithm::EdDsa,
        ])
        // `exp` is compared with this time: a token expired less than the skew ago passes.
        .set_time_fn(move || date(now_unix_seconds.saturating_sub(skew)))
        .set_issue_time_verifier_fn(move |issued| {
            if issued > date(now_unix_seconds + skew) {
                Err(format!("iat {issued} is in the future"))
            } else {
                Ok(())
            }
        });
        let parsed: Token = token
            .parse()
            .map_err(|error: serde_json::Error| TokenError::Invalid(error.to_string()))?;
        let claims = parsed
            .into_claims(&verifier, |_: Option<&Nonce>| Ok(()))
            .map_err(|error| match error {
                ClaimsVerificationError::Expired(message) => TokenError::Expired(message),
                ClaimsVerificationError::InvalidAudience(message) => {
                    TokenError::WrongAudience(message)
                }
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::NoMatchingKey,
                ) => TokenError::UnknownKey(header.kid.clone().unwrap_or_default()),
                ClaimsVerificationError::SignatureVerification(
                    SignatureVerificationError::DisallowedAlg(alg)
                    | SignatureVerificationError::UnsupportedAlg(alg),
                ) => TokenError::UnsupportedAlgorithm(alg),
                ClaimsVerificationError::SignatureVerification(error) => {
                    TokenError::BadSignature(error.to_string())
                }
                other => TokenError::Invalid(other.to_string()),
            })?;
        if let Some(nbf) = payload.nbf {
            let nbf = nbf
                .as_u64()
                .ok_or_else(|| TokenError::Invalid("nbf is not a time".into()))?;
            if nbf > now_unix_seconds + skew {
                return Err(TokenError::NotYetValid(nbf));
            }
        }
        let verified = VerifiedClaims {
            issuer: claims.issuer().as_str().to_string(),
            subject: claims.subject().as_str().to_string(),
            email: claims.email().map(|email| email.as_str().to_string()),
            email_verified: claims.email_verified(),
            ci: claims.additional_claims().clone(),
        };
        let expires = u64::try_from(claims.expiration().timestamp()).unwrap_or(0);
        Ok((crate::identity::map(issuer.kind, &verified)?, expires))
    }

    /// The issuer's keys: cached, or fetched when absent, stale, or lacking `kid`, by one
    /// request at a time and at most once per [`REFRESH_INTERVAL_SECONDS`].
    async fn keys(
        &self,
        issuer: &IssuerConfig,
        kid: Option<&str>,
        now: u64,
    ) -> Result<Arc<Keys>, TokenError> {
        if let Some(answer) = self.cached_keys(issuer, kid, now) {
            return answer;
        }
        let flight = self.fetching.get(&issuer.url).cloned().unwrap_or_default();
        let _flight = flight.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(answer) = self.cached_keys(issuer, kid, now) {
            return answer;
        }
        {
            let mut cache = self.cache();
            let state = cache.entry(issuer.url.clone()).or_default();
            state.attempted_at = Some(now);
            state.in_flight = true;
        }
        let fetched = self.discover(issuer).await;
        {
            let mut cache = self.cache();
            let state = cache.entry(issuer.url.clone()).or_default();
            state.in_flight = false;
            match fetched {
                Ok(set) => {
                    state.keys = Some(Arc::new(Keys {
                        set,
                        fetched_at: now,
                    }));
                    state.failure = None;
                }
                Err(TokenError::Discovery(failure)) => state.failure = Some(failure),
                Err(error) => state.failure = Some(error.to_string()),
            }
        }
        // The attempt just made throttles the next one, so the cache now has an answer.
        self.cached_keys(issuer, kid, now)
            .unwrap_or_else(|| Err(TokenError::UnknownKey(kid.unwrap_or_default().to_string())))
    }

    /// What the cache answers for `kid` without fetching, or `None` when a fetch is due: fresh
    /// keys holding `kid`; else, within [`REFRESH_INTERVAL_SECONDS`] of the last attempt, keys
    /// holding `kid` that are at most [`STALE_KEYS_MAX_SECONDS`] past their TTL, the last
    /// failure, or "unknown key".
    fn cached_keys(
        &self,
        issuer: &IssuerConfig,
        kid: Option<&str>,
        now: u64,
    ) -> Option<Result<Arc<Keys>, TokenError>> {
        let cache = self.cache();
        let state = cache.get(&issuer.url);
        let has_kid = |keys: &Keys| {
            kid.is_none_or(|kid| {
                keys.set
                    .keys()
                    .iter()
                    .any(|key| key.key_id().is_some_and(|id| id.as_str() == kid))
            })
        };
        let keys = state
            .and_then(|state| state.keys.clone())
            .filter(|keys| has_kid(keys));
        let fresh = |keys: &Keys| now < keys.fetched_at.saturating_add(KEYS_TTL_SECONDS);
        if let Some(keys) = keys.as_ref().filter(|keys| fresh(keys)) {
            return Some(Ok(Arc::clone(keys)));
        }
        let throttled = state
            .and_then(|state| state.attempted_at)
            .is_some_and(|at| now < at.saturating_add(REFRESH_INTERVAL_SECONDS));
        // Due, or under way (wait for its outcome behind the fetch lock).
        if !throttled || state.is_some_and(|state| state.in_flight) {
            return None;
        }
        let usable = keys.filter(|keys| {
            now < keys
                .fetched_at
                .saturating_add(KEYS_TTL_SECONDS + STALE_KEYS_MAX_SECONDS)
        });
        Some(
            match (usable, state.and_then(|state| state.failure.clone())) {
                (Some(keys), _) => Ok(keys),
                (None, Some(failure)) => Err(TokenError::Discovery(failure)),
                (None, None) => Err(TokenError::UnknownKey(kid.unwrap_or_default().to_string())),
            },
        )
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<String, IssuerKeys>> {
        lock(&self.keys)
    }

    /// Fetches the issuer's discovery document and key set.
    async fn discover(&self, issuer: &IssuerConfig) -> Result<CoreJsonWebKeySet, TokenError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.url.trim_end_matches('/')
        );
        let document = self
            .fetch
            .get(&url, DOCUMENT_BYTES_MAX)
            .await
            .map_err(|error| TokenError::Discovery(format!("{url}: {error}")))?;
        let metadata: CoreProviderMetadata = serde_json::from_slice(&document)
            .map_err(|error| TokenError::Discovery(format!("{url}: {error}")))?;
        if metadata.issuer().as_str() != issuer.url {
            return Err(TokenError::Discovery(format!(
                "{url} names issuer {:?}",
                metadata.issuer().as_str()
            )));
        }
        let jwks_url = metadata.jwks_uri().url().as_str().to_string();
        let body = self
            .fetch
            .get(&jwks_url, DOCUMENT_BYTES_MAX)
            .await
            .map_err(|error| TokenError::Discovery(format!("{jwks_url}: {error}")))?;
        serde_json::from_slice(&body)
            .map_err(|error| TokenError::Discovery(format!("{jwks_url}: {error}")))
    }
}
