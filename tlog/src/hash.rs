//! RFC 6962 hashing (RFC 9162 §2.1.1): the leaf hash, the interior node hash and the empty root.
//!
//! Leaves and interior nodes are hashed with different one-byte prefixes (0x00 and 0x01) so that
//! no leaf can be passed off as an interior node (second-preimage resistance of the tree).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use sha2::{Digest as _, Sha256};

/// Length in bytes of every hash in the tree (SHA-256).
pub const HASH_LEN: usize = 32;

/// A SHA-256 value: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash(pub [u8; HASH_LEN]);

/// A byte string that should have been a 32-byte hash and was not.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HashError {
    /// The bytes were not exactly 32 long.
    #[error("hash is {0} bytes long, want 32")]
    Length(usize),
    /// The base64 text did not decode (standard alphabet with padding is required).
    #[error("hash is not valid base64")]
    Base64,
    /// The hex text did not decode.
    #[error("hash is not valid hex")]
    Hex,
}

impl Hash {
    /// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
    pub const EMPTY_ROOT: Hash = Hash([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);

    /// The hash in a byte slice, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Hash, HashError> {
        let array: [u8; HASH_LEN] = bytes
            .try_into()
            .map_err(|_| HashError::Length(bytes.len()))?;
        Ok(Hash(array))
    }

    /// Parses standard base64 with padding (RFC 4648 §4), the encoding of checkpoints and proofs.
    pub fn from_base64(text: &str) -> Result<Hash, HashError> {
        // A 32-byte value is 44 base64 characters; refuse long input before decoding it.
        if text.len() != 44 {
            return Err(HashError::Base64);
        }
        let bytes = BASE64.decode(text).map_err(|_| HashError::Base64)?;
        Hash::from_slice(&bytes)
    }

    /// Parses lowercase or uppercase hex, the encoding of Rekor v1 proofs.
    pub fn from_hex(text: &str) -> Result<Hash, HashError> {
        if text.len() != 2 * HASH_LEN {
            return Err(HashError::Hex);
        }
        let mut array = [0u8; HASH_LEN];
        hex::decode_to_slice(text, &mut array).map_err(|_| HashError::Hex)?;
        Ok(Hash(array))
    }

    /// Standard base64 with padding.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }

    /// Lowercase hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; HASH_LEN] {
        &self.0
    }

    /// SHA-256 of arbitrary bytes (not a tree hash: no domain-separation prefix).
    pub fn digest(data: &[u8]) -> Hash {
        Hash(Sha256::digest(data).into())
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_hex())
    }
}

impl fmt::Display for Hash {
    /// Base64, as hashes appear in checkpoints and tlog-proof files.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Base64 text in human-readable formats (JSON), as in checkpoints; 32 raw bytes otherwise.
impl serde::Serialize for Hash {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(&self.to_base64())
        } else {
            serializer.serialize_bytes(&self.0)
        }
    }
}

impl<'de> serde::Deserialize<'de> for Hash {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        struct HashVisitor;

        impl serde::de::Visitor<'_> for HashVisitor {
            type Value = Hash;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 32-byte hash as base64 text or bytes")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Hash, E> {
                Hash::from_base64(text).map_err(E::custom)
            }

            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<Hash, E> {
                Hash::from_slice(bytes).map_err(E::custom)
            }
        }

        if deserializer.is_human_readable() {
            deserializer.deserialize_str(HashVisitor)
        } else {
            deserializer.deserialize_bytes(HashVisitor)
        }
    }
}

/// The hash of a leaf: `SHA-256(0x00 ‖ leaf bytes)`.
pub fn leaf_hash(leaf: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(leaf);
    Hash(hasher.finalize().into())
}

/// The hash of an interior node: `SHA-256(0x01 ‖ left ‖ right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut block = [0u8; 1 + 2 * HASH_LEN];
    block[0] = 0x01;
    block[1..1 + HASH_LEN].copy_from_slice(&left.0);
    block[1 + HASH_LEN..].copy_from_slice(&right.0);
    Hash(Sha256::digest(block).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_root_is_sha256_of_nothing() {
        assert_eq!(Hash::digest(b""), Hash::EMPTY_ROOT);
        assert_eq!(
            Hash::EMPTY_ROOT.to_hex(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn leaf_and_node_hashes_are_domain_separated() {
        // RFC 6962 leaf of the empty string (transparency-dev/merkle testonly constants).
        assert_eq!(
            leaf_hash(b"").to_hex(),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        let a = leaf_hash(b"a");
        let mut concatenated = Vec::from([0x00]);
        concatenated.extend_from_slice(&a.0);
        concatenated.extend_from_slice(&a.0);
        assert_ne!(node_hash(&a, &a), leaf_hash(&concatenated[1..]));
    }

    #[test]
    fn encodings_round_trip_and_reject_bad_lengths() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()), Ok(h));
        assert_eq!(Hash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(Hash::from_slice(&[0; 31]), Err(HashError::Length(31)));
        assert_eq!(Hash::from_base64("AAAA"), Err(HashError::Base64));
        assert_eq!(Hash::from_base64(&"!".repeat(44)), Err(HashError::Base64));
        assert_eq!(Hash::from_hex("zz"), Err(HashError::Hex));
    }

    #[test]
    fn json_form_is_base64() {
        let h = leaf_hash(b"x");
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(json, format!("\"{}\"", h.to_base64()));
        assert_eq!(serde_json::from_str::<Hash>(&json).unwrap(), h);
        assert!(serde_json::from_str::<Hash>("\"AAAA\"").is_err());
    }
}
