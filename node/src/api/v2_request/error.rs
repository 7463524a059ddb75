//! Why a Rekor v2 request body was refused: [`RequestError`], its stable codes and its HTTP
//! status.

use tlog::entry::{BodyError, InputError};

use super::json;

use crate::crypto::CryptoError;

/// Why a request body was refused. Every variant names the JSON path of the field or the
/// limit; [`RequestError::code`] is stable and machine-readable, [`RequestError::http_status`]
/// is 413 for size limits and 400 otherwise.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RequestError {
    /// The strict JSON reader refused the body (size, syntax, a duplicate member, depth or
    /// width; [`json::JsonError`] names the path).
    #[error(transparent)]
    Reader(#[from] json::JsonError),
    /// The body is not JSON, or a value could not be written back as JSON.
    #[error("request body is not valid JSON: {reason}")]
    Json {
        /// The JSON library's message.
        reason: String,
    },
    /// An object or array has more members than allowed.
    #[error("{path}: {count} items, at most {max} allowed")]
    TooMany {
        /// JSON path of the object or array.
        path: String,
        /// The number found (counting stops one past the bound while parsing).
        count: usize,
        /// The bound.
        max: usize,
    },
    /// A member the request format does not have.
    #[error("{path}: unknown field")]
    UnknownField {
        /// JSON path of the member.
        path: String,
    },
    /// A member only the server may set (see [`super::SERVER_FIELDS`]).
    #[error("{path}: set by the log, not by the client")]
    ServerField {
        /// JSON path of the member.
        path: String,
    },
    /// A required member is missing.
    #[error("{path}: missing")]
    MissingField {
        /// JSON path of the member.
        path: String,
    },
    /// A member has the wrong JSON type (including `null`).
    #[error("{path}: expected {expected}")]
    WrongType {
        /// JSON path of the member.
        path: String,
        /// The type required.
        expected: &'static str,
    },
    /// A string, byte string or list that must not be empty is.
    #[error("{path}: empty")]
    Empty {
        /// JSON path of the member.
        path: String,
    },
    /// Not canonical standard base64 with padding.
    #[error("{path}: not canonical standard base64 with padding")]
    Base64 {
        /// JSON path of the member.
        path: String,
    },
    /// A value longer than its bound.
    #[error("{path}: {actual} bytes, at most {max} allowed")]
    TooLong {
        /// JSON path of the member.
        path: String,
        /// The length found (for base64, an upper bound of the decoded length).
        actual: usize,
        /// The bound.
        max: usize,
    },
    /// Not exactly one of the members of a `oneof` is present.
    #[error("{path}: exactly one of {} required, {found} present", .members.join(", "))]
    OneOf {
        /// JSON path of the object.
        path: String,
        /// The members of the `oneof`.
        members: &'static [&'static str],
        /// How many of them are present.
        found: usize,
    },
    /// A value failed `tlog::entry` validation (digest length, key details, duplicate
    /// signature...); `prefix` is the JSON path of the object the error's own field is in.
    #[error("{prefix}{source}")]
    Field {
        /// JSON path prefix (ending in `.`) of the error's field.
        prefix: String,
        /// The validation error, naming its field within that object.
        source: InputError,
    },
    /// The key was refused or the signature did not verify (see [`CryptoError::code`]); its
    /// field is already the JSON path.
    #[error(transparent)]
    Crypto(CryptoError),
    /// A DSSE envelope signature could not be assigned a verifier of its own that verifies it.
    #[error("{path}: {reason}")]
    UnverifiedSignature {
        /// JSON path of the signature.
        path: String,
        /// Why ("verifies with none of the verifiers", "verifies only with verifiers used by
        /// other signatures").
        reason: &'static str,
    },
    /// The entry could not be built (not expected for a request that passed [`super::parse`]).
    #[error("entry: {0}")]
    Entry(BodyError),
    /// The canonical entry would be longer than `tlog::entry::BODY_BYTES_MAX`.
    #[error("canonical entry is {actual} bytes, at most {max} allowed")]
    EntryTooLarge {
        /// The length of the canonical body.
        actual: usize,
        /// `BODY_BYTES_MAX`.
        max: usize,
    },
}

impl RequestError {
    /// A stable, machine-readable code. One of: `body_too_large`, `entry_too_large` (both
    /// 413); `invalid_json`, `duplicate_member`, `too_deep`, `too_many`, `unknown_field`,
    /// `server_field`, `missing_field`, `wrong_type`, `empty_field`, `invalid_base64`,
    /// `too_long`, `one_of`, `invalid_digest`, `unsupported_key`, `invalid_key`,
    /// `key_mismatch`, `weak_key`, `bad_signature`, `duplicate_signature`, `verifier_count`,
    /// `invalid_field`, `invalid_entry`.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Reader(error) => error.code(),
            RequestError::Json { .. } => "invalid_json",
            RequestError::TooMany { .. } => "too_many",
            RequestError::UnknownField { .. } => "unknown_field",
            RequestError::ServerField { .. } => "server_field",
            RequestError::MissingField { .. } => "missing_field",
            RequestError::WrongType { .. } => "wrong_type",
            RequestError::Empty { .. } => "empty_field",
            RequestError::Base64 { .. } => "invalid_base64",
            RequestError::TooLong { .. } => "too_long",
            RequestError::OneOf { .. } => "one_of",
            RequestError::Field { source, .. } => match source {
                InputError::DigestLength { .. } | InputError::DigestAlgorithmMismatch { .. } => {
                    "invalid_digest"
                }
                InputError::UnknownKeyDetails { .. } | InputError::NoDigestAlgorithm { .. } => {
                    "unsupported_key"
                }
                InputError::Base64 { .. } => "invalid_base64",
                InputError::Empty { .. } => "empty_field",
                InputError::TooLong { .. } => "too_long",
                InputError::TooMany { .. } => "too_many",
                InputError::DuplicateSignature { .. } => "duplicate_signature",
                InputError::VerifierCount { .. } => "verifier_count",
                _ => "invalid_field",
            },
            RequestError::Crypto(error) => error.code(),
            RequestError::UnverifiedSignature { .. } => "bad_signature",
            RequestError::EntryTooLarge { .. } => "entry_too_large",
            RequestError::Entry(_) => "invalid_entry",
        }
    }

    /// The HTTP status: 413 for a body over the reader's size bound and for
    /// [`RequestError::EntryTooLarge`],
    /// 400 for everything else.
    pub fn http_status(&self) -> u16 {
        match self {
            RequestError::Reader(error) => error.http_status(),
            RequestError::EntryTooLarge { .. } => 413,
            _ => 400,
        }
    }
}
