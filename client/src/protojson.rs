//! What protobuf's JSON mapping (ProtoJSON) lets a writer do, for the parsers of Sigstore's
//! documents (`bundle`, `trust_root`): leave out, or write `null` for, any field at its
//! default value (Go's `protojson` and sigstore-js leave out every default: no `logIndex` for
//! the first entry of a log, no empty list); write 64-bit integers as numbers or decimal
//! strings; write enums by name or by number. Field names may also be the proto names
//! (`log_index`); the parsers list them as serde aliases.

use serde::{Deserialize, Deserializer};
use tlog::entry::HashAlgorithm;

/// A field that may be absent or `null`, both meaning its default value. Used with
/// `#[serde(default, deserialize_with = "crate::protojson::or_default")]`: `default` covers
/// the absent case, this function `null`.
pub(crate) fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// An `int64` or `uint64`: a JSON number or a decimal string. Absent means 0.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Int64 {
    /// As a number.
    Number(i64),
    /// As a string.
    Text(String),
}

impl Default for Int64 {
    fn default() -> Int64 {
        Int64::Number(0)
    }
}

impl Int64 {
    /// The value, if it is a 64-bit signed integer.
    pub(crate) fn value(&self) -> Option<i64> {
        match self {
            Int64::Number(number) => Some(*number),
            Int64::Text(text) => text.parse().ok(),
        }
    }
}

/// A protobuf enum value: its name, or its number. Absent means 0 (the `*_UNSPECIFIED` value).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum Enum {
    /// By name.
    Name(String),
    /// By number.
    Number(i32),
}

impl Default for Enum {
    fn default() -> Enum {
        Enum::Number(0)
    }
}

impl Enum {
    /// A protobuf-specs `HashAlgorithm` (`sigstore_common.proto`: SHA2_256 = 1, SHA2_384 = 2,
    /// SHA2_512 = 3), if it is one Cairn supports.
    pub(crate) fn hash_algorithm(&self) -> Option<HashAlgorithm> {
        match self {
            Enum::Name(name) => HashAlgorithm::from_protobuf_name(name),
            Enum::Number(1) => Some(HashAlgorithm::Sha256),
            Enum::Number(2) => Some(HashAlgorithm::Sha384),
            Enum::Number(3) => Some(HashAlgorithm::Sha512),
            Enum::Number(_) => None,
        }
    }
}
