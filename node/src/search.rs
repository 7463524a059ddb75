//! The search index's keys: what a leaf is found by, derived from the leaf's bytes alone.
//!
//! The index is replicated state: `state_machine::append_leaf` writes a leaf's keys in the
//! transaction that stores the leaf (apply and snapshot catch-up alike), so every replica has
//! the same index, a crash never leaves it half-written, and a node that caught up from a
//! snapshot indexed every leaf it fetched. That works only because the keys are a pure function
//! of the leaf: [`keys`] reads nothing else, parses strictly and deterministically, and a leaf
//! it cannot parse simply has no keys.
//!
//! The keys are Rekor v1's (`IndexKeys` of its entry types, `/api/v1/index/retrieve`):
//! - the artifact digest, `"<algorithm>:<hex>"` lowercased: a hashedrekord's `data.hash`; a
//!   dsse entry's payload hash and (v0.0.1) its envelope hash; an intoto 0.0.2 entry's payload
//!   and envelope hashes. Rekor also indexes the in-toto
//!   subjects of a dsse payload; the logged body carries only hashes, so Cairn cannot.
//! - the public key: lowercase hex SHA-256 of the key's or certificate's canonical PEM (Rekor's
//!   `CanonicalValue`, which is the PEM the v1 body carries); for a v2 entry, of the PEM of its
//!   DER verifier, so the same key finds v1 and v2 entries.
//! - the signer's identity: each e-mail (lowercased, as Rekor lowercases the query) and URI
//!   subject alternative name of a certificate. In the certificate log, the identities of every
//!   precertificate and certificate, so a monitor can list all certificates issued to one.
//!
//! Each key is stored as its kind and the SHA-256 of its text ([`SearchKey`]): fixed-size rows,
//! one per (key, leaf index), in leaf order.

use std::collections::BTreeSet;

use sha2::{Digest as _, Sha256};
use tlog::entry::{Entry, KeyMaterial, VerifierKey};
use x509_parser::prelude::{FromDer as _, GeneralName, TbsCertificate, X509Certificate};

/// The most identities indexed per certificate (the first ones, in SAN order): a Fulcio
/// certificate has one.
pub const IDENTITIES_PER_CERTIFICATE_MAX: usize = 16;

/// What a search key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum KeyKind {
    /// An artifact digest, `sha256:<hex>`.
    Digest = 1,
    /// The hex SHA-256 of a key's or certificate's canonical PEM.
    PublicKey = 2,
    /// A certificate's e-mail (lowercased) or URI subject alternative name.
    Identity = 3,
}

impl KeyKind {
    /// The stored tag.
    pub fn tag(self) -> u8 {
        self as u8
    }
}

/// One search key as stored: its kind and the SHA-256 of its text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SearchKey {
    /// What the key is.
    pub kind: KeyKind,
    /// SHA-256 of the key's text.
    pub hash: [u8; 32],
}

impl SearchKey {
    /// The key for `text` of `kind` (text exactly as indexed: see the `for_*` constructors).
    fn new(kind: KeyKind, text: &str) -> SearchKey {
        SearchKey {
            kind,
            hash: Sha256::digest(text.as_bytes()).into(),
        }
    }

    /// The key of an artifact digest given as `<algorithm>:<hex>` or bare hex (taken as
    /// SHA-256, as Rekor does); `None` if it is not that.
    pub fn for_digest(text: &str) -> Option<SearchKey> {
        let text = text.trim().to_ascii_lowercase();
        let (algorithm, hex) = match text.split_once(':') {
            Some((algorithm, hex)) => (algorithm.to_owned(), hex.to_owned()),
            None => ("sha256".to_owned(), text.clone()),
        };
        let length = match algorithm.as_str() {
            "sha256" => 64,
            "sha384" => 96,
            "sha512" => 128,
            _ => return None,
        };
        if hex.len() != length || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return None;
        }
        Some(SearchKey::new(
            KeyKind::Digest,
            &format!("{algorithm}:{hex}"),
        ))
    }

    /// The key of a public key or certificate (its canonical PEM is what is hashed).
    pub fn for_key(key: &KeyMaterial) -> SearchKey {
        let pem_hash = Sha256::digest(key.to_pem().as_bytes());
        let mut buffer = [0; 64];
        match hex_in(&pem_hash, &mut buffer) {
            Some(hex) => SearchKey {
                kind: KeyKind::PublicKey,
                hash: Sha256::digest(hex).into(),
            },
            None => SearchKey::for_key_hash(&hex::encode(pem_hash)),
        }
    }

    /// The key of a public key given as the hex SHA-256 of its canonical PEM.
    pub fn for_key_hash(hex_sha256: &str) -> SearchKey {
        SearchKey::new(KeyKind::PublicKey, &hex_sha256.to_ascii_lowercase())
    }

    /// The key of an identity: an e-mail address (matched case-insensitively) or a URI
    /// (anything with `://` or no `@`, matched exactly).
    pub fn for_identity(identity: &str) -> SearchKey {
        if is_email(identity) {
            SearchKey::new(KeyKind::Identity, &identity.to_lowercase())
        } else {
            SearchKey::new(KeyKind::Identity, identity)
        }
    }
}

fn is_email(identity: &str) -> bool {
    identity.contains('@') && !identity.contains("://")
}

/// Every search key of `leaf`, in a fixed order. Artifact-log leaves are Rekor entry bodies
/// (JSON), certificate-log leaves RFC 6962 `MerkleTreeLeaf`s; a leaf that is neither, or does
/// not parse, has none.
pub fn keys(leaf: &[u8]) -> BTreeSet<SearchKey> {
    let mut keys = BTreeSet::new();
    if leaf.first() == Some(&b'{') {
        if let Ok(entry) = Entry::parse(leaf) {
            entry_keys(&entry, &mut keys);
        }
    } else if let Ok(leaf) = ca::ct::LogLeaf::parse(leaf) {
        match leaf {
            ca::ct::LogLeaf::X509 { certificate, .. } => {
                if let Ok((_, certificate)) = X509Certificate::from_der(&certificate) {
                    identities(&certificate.tbs_certificate, &mut keys);
                }
            }
            ca::ct::LogLeaf::Precert { tbs, .. } => {
                if let Ok((_, tbs)) = TbsCertificate::from_der(&tbs) {
                    identities(&tbs, &mut keys);
                }
            }
        }
    }
    keys
}

/// Lowercase hex of `bytes` in `buffer`, or `None` if it does not fit.
fn hex_in<'b>(bytes: &[u8], buffer: &'b mut [u8]) -> Option<&'b [u8]> {
    let hex = buffer.get_mut(..bytes.len() * 2)?;
    hex::encode_to_slice(bytes, hex).ok()?;
    Some(hex)
}

fn digest_key(digest: &tlog::entry::Digest) -> SearchKey {
    // `<algorithm>:<hex>` hashed in pieces, no string built: this runs for every leaf applied
    // or installed.
    let algorithm = digest.algorithm().rekor_v1_name();
    let mut buffer = [0; 128];
    match hex_in(digest.as_bytes(), &mut buffer) {
        Some(hex) => SearchKey {
            kind: KeyKind::Digest,
            hash: Sha256::new()
                .chain_update(algorithm.as_bytes())
                .chain_update(b":")
                .chain_update(hex)
                .finalize()
                .into(),
        },
        // Longer than SHA-512: no such digest today.
        None => SearchKey::new(
            KeyKind::Digest,
            &format!("{algorithm}:{}", hex::encode(digest.as_bytes())),
        ),
    }
}

fn entry_keys(entry: &Entry, keys: &mut BTreeSet<SearchKey>) {
    match entry {
        Entry::HashedRekordV001(entry) => {
            keys.insert(digest_key(entry.digest()));
            key_material(entry.public_key(), keys);
        }
        Entry::HashedRekordV002(entry) => {
            keys.insert(digest_key(entry.digest()));
            verifier(entry.signature().verifier.key(), keys);
        }
        Entry::DsseV001(entry) => {
            keys.insert(digest_key(entry.envelope_hash()));
            keys.insert(digest_key(entry.payload_hash()));
            for signature in entry.signatures() {
                key_material(&signature.verifier, keys);
            }
        }
        Entry::DsseV002(entry) => {
            keys.insert(digest_key(entry.payload_hash()));
            for signature in entry.signatures() {
                verifier(signature.verifier.key(), keys);
            }
        }
        // Rekor's intoto 0.0.2 `IndexKeys`: the envelope's and the payload's hashes and each
        // signature's key (the in-toto subjects are not in the logged body).
        Entry::IntotoV002(entry) => {
            keys.insert(digest_key(entry.envelope_hash()));
            keys.insert(digest_key(entry.payload_hash()));
            for signature in entry.signatures() {
                key_material(&signature.public_key, keys);
            }
        }
        // A kind added to `tlog::entry` later is indexed once this match learns it.
        _ => {}
    }
}

fn verifier(key: &VerifierKey, keys: &mut BTreeSet<SearchKey>) {
    let material = match key {
        VerifierKey::PublicKey(der) => KeyMaterial::from_public_key_der(der),
        VerifierKey::X509Certificate(der) => KeyMaterial::from_certificate_der(der),
        _ => return,
    };
    if let Ok(material) = material {
        key_material(&material, keys);
    }
}

fn key_material(material: &KeyMaterial, keys: &mut BTreeSet<SearchKey>) {
    keys.insert(SearchKey::for_key(material));
    if let KeyMaterial::Certificates(chain) = material
        && let Some(leaf) = chain.first()
        && let Ok((_, certificate)) = X509Certificate::from_der(leaf)
    {
        identities(&certificate.tbs_certificate, keys);
    }
}

/// The e-mail and URI SANs of a certificate, at most [`IDENTITIES_PER_CERTIFICATE_MAX`].
fn identities(tbs: &TbsCertificate<'_>, keys: &mut BTreeSet<SearchKey>) {
    let Ok(Some(san)) = tbs.subject_alternative_name() else {
        return;
    };
    let names = san
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::RFC822Name(email) => {
                Some(SearchKey::new(KeyKind::Identity, &email.to_lowercase()))
            }
            GeneralName::URI(uri) => Some(SearchKey::new(KeyKind::Identity, uri)),
            _ => None,
        });
    keys.extend(names.take(IDENTITIES_PER_CERTIFICATE_MAX));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_are_normalised_like_rekor() {
        let hex = "A".repeat(64);
        let bare = SearchKey::for_digest(&hex).unwrap();
        let prefixed = SearchKey::for_digest(&format!("sha256:{}", hex.to_lowercase())).unwrap();
        assert_eq!(bare, prefixed);
        assert!(SearchKey::for_digest("sha256:abc").is_none());
        assert!(SearchKey::for_digest(&format!("md5:{hex}")).is_none());
        assert!(SearchKey::for_digest(&format!("sha256:{}", "g".repeat(64))).is_none());
    }

    #[test]
    fn emails_match_in_any_case_uris_exactly() {
        assert_eq!(
            SearchKey::for_identity("Me@Example.com"),
            SearchKey::for_identity("me@example.com")
        );
        assert_ne!(
            SearchKey::for_identity("https://Example.com/x"),
            SearchKey::for_identity("https://example.com/x")
        );
    }

    /// A self-signed certificate with these e-mail and URI SANs, DER.
    fn certificate(emails: &[&str], uris: &[&str]) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        for email in emails {
            let email = (*email).to_owned().try_into().unwrap();
            params
                .subject_alt_names
                .push(rcgen::SanType::Rfc822Name(email));
        }
        for uri in uris {
            let uri = (*uri).to_owned().try_into().unwrap();
            params.subject_alt_names.push(rcgen::SanType::URI(uri));
        }
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn sha256(text: &str) -> tlog::entry::Digest {
        tlog::entry::Digest::new(
            tlog::entry::HashAlgorithm::Sha256,
            tlog::Hash::digest(text.as_bytes()).as_bytes(),
        )
        .unwrap()
    }

    fn hex_digest(text: &str) -> String {
        format!(
            "sha256:{}",
            hex::encode(tlog::Hash::digest(text.as_bytes()).as_bytes())
        )
    }

    #[test]
    fn a_hashedrekord_is_found_by_digest_certificate_and_each_identity() {
        use tlog::entry::{CanonicalBody, HashedRekordV001, SignatureBytes};
        let uri = "https://github.com/org/repo/.github/workflows/release.yml@refs/heads/main";
        let der = certificate(&["Alice@Example.com"], &[uri]);
        let material = KeyMaterial::from_certificate_der(&der).unwrap();
        let entry = HashedRekordV001::new(
            sha256("artifact"),
            SignatureBytes::new(&[7; 70]).unwrap(),
            material.clone(),
        );
        let leaf = CanonicalBody::new(entry).unwrap().into_bytes();
        // Rekor's key hash is over the PEM the body carries.
        let pem_hash = hex::encode(Sha256::digest(material.to_pem().as_bytes()));
        let expected: BTreeSet<SearchKey> = [
            SearchKey::for_digest(&hex_digest("artifact")).unwrap(),
            SearchKey::for_key(&material),
            SearchKey::for_key_hash(&pem_hash.to_uppercase()),
            SearchKey::for_identity("alice@example.com"),
            SearchKey::for_identity(uri),
        ]
        .into();
        assert_eq!(keys(&leaf), expected);
    }

    #[test]
    fn a_dsse_entry_is_found_by_both_hashes_and_its_verifier() {
        use tlog::entry::{CanonicalBody, DsseV001, DsseV001Signature, SignatureBytes};
        let der = certificate(&["bob@example.com"], &[]);
        let verifier = KeyMaterial::from_certificate_der(&der).unwrap();
        let entry = DsseV001::new(
            sha256("envelope"),
            sha256("payload"),
            vec![DsseV001Signature {
                signature: SignatureBytes::new(&[9; 70]).unwrap(),
                verifier: verifier.clone(),
            }],
        )
        .unwrap();
        let leaf = CanonicalBody::new(entry).unwrap().into_bytes();
        let expected: BTreeSet<SearchKey> = [
            SearchKey::for_digest(&hex_digest("envelope")).unwrap(),
            SearchKey::for_digest(&hex_digest("payload")).unwrap(),
            SearchKey::for_key(&verifier),
            SearchKey::for_identity("BOB@example.com"),
        ]
        .into();
        assert_eq!(keys(&leaf), expected);
    }

    #[test]
    fn an_intoto_entry_is_found_by_both_hashes_and_its_key() {
        use tlog::entry::{CanonicalBody, IntotoV002, IntotoV002Signature, SignatureBytes};
        let der = certificate(&["dave@example.com"], &[]);
        let key = KeyMaterial::from_certificate_der(&der).unwrap();
        let entry = IntotoV002::new(
            sha256("envelope"),
            sha256("payload"),
            "application/vnd.in-toto+json".into(),
            vec![IntotoV002Signature {
                keyid: None,
                sig: SignatureBytes::new(&[7; 70]).unwrap(),
                public_key: key.clone(),
            }],
        )
        .unwrap();
        let leaf = CanonicalBody::new(entry).unwrap().into_bytes();
        let expected: BTreeSet<SearchKey> = [
            SearchKey::for_digest(&hex_digest("envelope")).unwrap(),
            SearchKey::for_digest(&hex_digest("payload")).unwrap(),
            SearchKey::for_key(&key),
            SearchKey::for_identity("dave@example.com"),
        ]
        .into();
        assert_eq!(keys(&leaf), expected);
    }

    #[test]
    fn certificate_log_leaves_are_found_by_identity() {
        let der = certificate(&["carol@example.com"], &["spiffe://example.org/ci"]);
        let expected: BTreeSet<SearchKey> = [
            SearchKey::for_identity("carol@example.com"),
            SearchKey::for_identity("spiffe://example.org/ci"),
        ]
        .into();
        let final_leaf = ca::ct::x509_leaf(1, &der).unwrap();
        assert_eq!(keys(&final_leaf), expected);
        let (_, parsed) = X509Certificate::from_der(&der).unwrap();
        let tbs = parsed.tbs_certificate.as_ref();
        let precert_leaf = ca::ct::precert_leaf(1, &[3; 32], tbs).unwrap();
        assert_eq!(keys(&precert_leaf), expected);
        // The identity kind is not confused with the others.
        assert!(!keys(&final_leaf).contains(&SearchKey::new(KeyKind::Digest, "carol@example.com")));
    }

    #[test]
    fn garbage_has_no_keys() {
        assert!(keys(b"").is_empty());
        assert!(keys(b"{not json").is_empty());
        assert!(keys(&[0, 0, 1, 2]).is_empty());
    }
}
