//! Every Ed25519 signature and strict verification `tlog` makes (checkpoints, notes,
//! cosignatures) goes through here, so that one process can remember their results.
//!
//! Both are pure functions: Ed25519 signatures are deterministic (RFC 8032), and a strict
//! verification depends only on the key, the message and the signature. The deterministic
//! simulator runs every node, witness and its checker in one process, where the same checkpoint
//! is signed by each replica and the same signature is verified by each witness, node and
//! the checker; [`remember_results`] lets it pay for each distinct computation once, and a
//! signature it made needs no verification at all (it is known to verify). Nothing
//! else turns it on: a production process computes every signature and verification.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use ed25519_dalek::Signer;
use sha2::{Digest, Sha256};

/// The remembered results, present once [`remember_results`] was called.
static MEMO: OnceLock<Mutex<Memo>> = OnceLock::new();

/// Results keyed by SHA-256 over a domain tag and every input, so a key names one computation.
struct Memo {
    capacity: usize,
    signatures: HashMap<[u8; 32], [u8; 64]>,
    verifications: HashMap<[u8; 32], bool>,
}

/// Remember up to `capacity` signatures and as many verification results for the rest of the
/// process (both are forgotten all at once when full). For a process that runs many simulated
/// machines; results are the same as without it, only computed once.
pub fn remember_results(capacity: usize) {
    let _ = MEMO.set(Mutex::new(Memo {
        capacity: capacity.max(1),
        signatures: HashMap::new(),
        verifications: HashMap::new(),
    }));
}

/// `key`'s Ed25519 signature of `message`.
pub fn sign(key: &ed25519_dalek::SigningKey, message: &[u8]) -> ed25519_dalek::Signature {
    let Some(memo) = MEMO.get() else {
        return key.sign(message);
    };
    let id = memo_key(b"sign", &[key.as_bytes(), message]);
    if let Some(bytes) = lock(memo).signatures.get(&id) {
        return ed25519_dalek::Signature::from_bytes(bytes);
    }
    let signature = key.sign(message);
    // The signer's own signature verifies strictly: RFC 8032 verification accepts every honest
    // signature, and a clamped secret scalar never gives a small-order (weak) public key. So
    // the verifications this signature will meet (by witnesses, nodes, the checker) are known
    // now, without the work.
    let verification = verification_id(&key.verifying_key(), message, &signature);
    let mut memo = lock(memo);
    let capacity = memo.capacity;
    insert_bounded(&mut memo.signatures, capacity, id, signature.to_bytes());
    insert_bounded(&mut memo.verifications, capacity, verification, true);
    signature
}

/// Whether `signature` is `key`'s strict Ed25519 signature of `message`: every honest
/// signature passes, and signatures under weak keys or with non-canonical encodings do not.
pub fn verify_strict(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &ed25519_dalek::Signature,
) -> bool {
    let Some(memo) = MEMO.get() else {
        return key.verify_strict(message, signature).is_ok();
    };
    let id = verification_id(key, message, signature);
    if let Some(&valid) = lock(memo).verifications.get(&id) {
        return valid;
    }
    #[cfg(test)]
    tests::VERIFIED.with(|count| count.set(count.get() + 1));
    let valid = key.verify_strict(message, signature).is_ok();
    let mut memo = lock(memo);
    let capacity = memo.capacity;
    insert_bounded(&mut memo.verifications, capacity, id, valid);
    valid
}

/// The memo key of one strict verification.
fn verification_id(
    key: &ed25519_dalek::VerifyingKey,
    message: &[u8],
    signature: &ed25519_dalek::Signature,
) -> [u8; 32] {
    memo_key(b"verify", &[key.as_bytes(), &signature.to_bytes(), message])
}

/// Inserts into a map of at most `capacity` results, forgetting all of them when it is full.
fn insert_bounded<V>(map: &mut HashMap<[u8; 32], V>, capacity: usize, id: [u8; 32], value: V) {
    if map.len() >= capacity {
        map.clear();
    }
    map.insert(id, value);
}

/// SHA-256 of the tag and each input, each prefixed with its length (no two input lists
/// share an encoding).
fn memo_key(tag: &[u8], inputs: &[&[u8]]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    for input in inputs {
        hasher.update((input.len() as u64).to_be_bytes());
        hasher.update(input);
    }
    hasher.finalize().into()
}

/// The memo's lock; a panic elsewhere while it was held leaves maps that are still valid.
fn lock(memo: &Mutex<Memo>) -> std::sync::MutexGuard<'_, Memo> {
    memo.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Strict verifications computed (not remembered) on this thread while remembering.
        pub(super) static VERIFIED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn a_full_memo_starts_over() {
        let mut map = HashMap::new();
        insert_bounded(&mut map, 2, [1; 32], true);
        insert_bounded(&mut map, 2, [2; 32], false);
        insert_bounded(&mut map, 2, [3; 32], true);
        assert_eq!(map, HashMap::from([([3; 32], true)]));
    }

    #[test]
    fn a_remembered_signature_verifies_without_the_work() {
        remember_results(1 << 16);
        let key = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
        for message in [&b"a"[..], b"checkpoint 1", b""] {
            let signature = sign(&key, message);
            let before = VERIFIED.with(std::cell::Cell::get);
            assert!(verify_strict(&key.verifying_key(), message, &signature));
            assert_eq!(
                VERIFIED.with(std::cell::Cell::get),
                before,
                "computed again"
            );
            // The answer it remembered is the one the computation gives.
            assert!(
                key.verifying_key()
                    .verify_strict(message, &signature)
                    .is_ok()
            );
            // Anything else is still computed.
            assert!(!verify_strict(&key.verifying_key(), b"other", &signature));
            assert_eq!(VERIFIED.with(std::cell::Cell::get), before + 1);
        }
    }

    #[test]
    fn remembered_results_equal_computed_ones() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
        let other = ed25519_dalek::SigningKey::from_bytes(&[8; 32]);
        let before = sign(&key, b"checkpoint");
        let good_before = verify_strict(&key.verifying_key(), b"checkpoint", &before);
        // One capacity for every test: the memo is process-wide and tests run in parallel.
        remember_results(1 << 16);
        for _ in 0..3 {
            // The second round is answered from the memo.
            assert_eq!(sign(&key, b"checkpoint"), before);
            assert_ne!(sign(&other, b"checkpoint"), before);
            assert_ne!(sign(&key, b"checkpoint2"), before);
            assert!(good_before);
            assert!(verify_strict(&key.verifying_key(), b"checkpoint", &before));
            assert!(!verify_strict(&key.verifying_key(), b"checkpoinT", &before));
            assert!(!verify_strict(
                &other.verifying_key(),
                b"checkpoint",
                &before
            ));
        }
    }
}
