//! The keyless certificate authority (Fulcio's job), as a library: no HTTP server, no storage,
//! no clock (times, serials and the HTTP client are parameters; the only randomness is inside
//! ECDSA signatures and key generation).
//!
//! - [`oidc`]: OpenID Connect ID token verification against an issuer allow-list.
//! - [`identity`]: token claims to the certificate's SAN and Fulcio extensions.
//! - [`pop`]: proof of possession of the certified key (CSR, or key plus signed challenge).
//! - [`cert`]: the root and intermediate, and the 20-minute leaf as precertificate and final
//!   certificate.
//! - [`ct`]: the certificate log's leaves and the SCT the certificate embeds.
//! - [`rate`]: requests per identity per minute.
//!
//! The node composes them so that no certificate reaches a caller before it is committed to the
//! certificate log: precertificate entry committed, SCT naming that entry, final certificate
//! committed, then returned (see `node::http::ca_api`).

pub mod cert;
pub mod ct;
mod der;
pub mod identity;
pub mod oidc;
pub mod pop;
pub mod rate;
pub mod tsa;

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`oidc::TOKEN_BYTES_MAX`].
    #[error("token is longer than {0} bytes")]
    TooLarge(usize),
    /// Not a JWS compact serialisation with JSON header and claims.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// `iss` is not on the allow-list (exact match); nothing was fetched.
    #[error("issuer {0:?} is not allowed")]
    UnknownIssuer(String),
    /// `none`, HMAC or another algorithm the CA does not accept.
    #[error("signing algorithm {0:?} is not accepted")]
    UnsupportedAlgorithm(String),
    /// The issuer's key set has no key with the token's `kid`, even after a refresh.
    #[error("no key {0:?} in the issuer's key set")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(String),
    /// `exp` has passed, or `iat` is in the future, beyond the skew.
    #[error("token expired or issued in the future: {0}")]
    Expired(String),
    /// `nbf` is in the future, beyond the skew.
    #[error("token not valid before {0}")]
    NotYetValid(u64),
    /// `aud` is missing, another, or one of several.
    #[error("wrong audience: {0}")]
    WrongAudience(String),
    /// Another claim check failed (issuer mismatch, missing claims).
    #[error("invalid token: {0}")]
    Invalid(String),
    /// The email is not verified (`email_verified` missing or false).
    #[error("the token's email is not verified (email_verified must be true)")]
    EmailNotVerified,
    /// The identity claims cannot be written into a certificate.
    #[error("{0}")]
    InvalidIdentity(String),
    /// The issuer's discovery document or keys could not be fetched or read.
    #[error("issuer discovery failed: {0}")]
    Discovery(String),
}

impl TokenError {
    /// The HTTP status for this refusal: 400 for requests that are malformed or name an issuer
    /// or identity the CA will not certify, 401 for tokens that fail verification, 503 when the
    /// issuer cannot be reached.
    pub fn http_status(&self) -> u16 {
        match self {
            TokenError::TooLarge(_)
            | TokenError::Malformed(_)
            | TokenError::UnknownIssuer(_)
            | TokenError::EmailNotVerified
            | TokenError::InvalidIdentity(_) => 400,
            TokenError::UnsupportedAlgorithm(_)
            | TokenError::UnknownKey(_)
            | TokenError::BadSignature(_)
            | TokenError::Expired(_)
            | TokenError::NotYetValid(_)
            | TokenError::WrongAudience(_)
            | TokenError::Invalid(_) => 401,
            TokenError::Discovery(_) => 503,
        }
    }

    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::TooLarge(_) => "token_too_large",
            TokenError::Malformed(_) => "malformed_token",
            TokenError::UnknownIssuer(_) => "unknown_issuer",
            TokenError::UnsupportedAlgorithm(_) => "unsupported_algorithm",
            TokenError::UnknownKey(_) => "unknown_key",
            TokenError::BadSignature(_) => "bad_signature",
            TokenError::Expired(_) => "expired",
            TokenError::NotYetValid(_) => "not_yet_valid",
            TokenError::WrongAudience(_) => "wrong_audience",
            TokenError::Invalid(_) => "invalid_token",
            TokenError::EmailNotVerified => "email_not_verified",
            TokenError::InvalidIdentity(_) => "invalid_identity",
            TokenError::Discovery(_) => "issuer_unavailable",
        }
    }
}

/// A certificate, key or SCT could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertError {
    /// A key or CA file is unusable.
    #[error("key: {0}")]
    Key(String),
    /// DER or TLS bytes are not what was expected.
    #[error("malformed: {0}")]
    Malformed(String),
    /// An SCT is malformed or does not verify.
    #[error("SCT: {0}")]
    Sct(String),
}
