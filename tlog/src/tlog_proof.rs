//! C2SP tlog-proof (c2sp.org/tlog-proof, `c2sp.org/tlog-proof@v1`): an offline-verifiable
//! proof that an entry is in a log, as one text file (a "spicy signature", `.tlog-proof`).
//!
//! Layout, one item per newline-terminated line:
//!
//! ```text
//! c2sp.org/tlog-proof@v1
//! extra <base64>            (optional, unauthenticated)
//! index <n>                 (decimal, no leading zeros)
//! <base64 hash>             (zero or more: the inclusion proof, leaf sibling first)
//!
//! <the signed checkpoint note, verbatim, with cosignatures>
//! ```
//!
//! Parsing checks the syntax and limits and that the note is a well-formed checkpoint; it
//! verifies nothing. [`TlogProof::verify`] (log keys) and [`TlogProof::verify_with_policy`]
//! (a tlog-policy: log key and witness quorum) open the checkpoint and check the inclusion proof
//! against its root. Neither compares the origin with an expected log: the caller does, or the
//! policy does.
//!
//! Deviation: the spec allows `extra` to be followed by any base64; an empty `extra` line is
//! refused here (without extra data the line is to be omitted, so an empty one is malformed).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint, open_note, parse_decimal};
use crate::hash::{Hash, HashError};
use crate::keys::Verifiers;
use crate::note::{NOTE_BYTES_MAX, Note, NoteError};
use crate::policy::{Policy, PolicyError, PolicyVerified};
use crate::proof::{InclusionProof, PROOF_HASHES_MAX, ProofError};
use crate::tree::LeafIndex;

/// The first line of every tlog-proof.
pub const TLOG_PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// The most extra data accepted, in decoded bytes.
pub const EXTRA_BYTES_MAX: usize = 64 * 1024;

/// The largest tlog-proof accepted, in bytes: a maximal note plus the header, a maximal extra
/// line, the index and a maximal proof.
pub const TLOG_PROOF_BYTES_MAX: usize = NOTE_BYTES_MAX + 2 * EXTRA_BYTES_MAX;

/// Why a tlog-proof did not parse, format or verify.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlogProofError {
    /// The input is longer than [`TLOG_PROOF_BYTES_MAX`].
    #[error("tlog-proof is {len} bytes long, more than the limit of {max}")]
    TooLarge {
        /// The length of the input.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The input is not valid UTF-8.
    #[error("tlog-proof is not valid UTF-8")]
    NotUtf8,
    /// The input ends before the blank line that precedes the checkpoint.
    #[error("line {line}: tlog-proof ends before the checkpoint")]
    Truncated {
        /// The line where more was expected, counted from 1.
        line: usize,
    },
    /// The first line is not `c2sp.org/tlog-proof@v1`.
    #[error("line 1: not \"c2sp.org/tlog-proof@v1\"")]
    Header,
    /// The extra data is empty, not valid base64, or larger than [`EXTRA_BYTES_MAX`].
    #[error("line 2: extra data is empty, not valid base64, or over {EXTRA_BYTES_MAX} bytes")]
    Extra,
    /// The index line is not `index <n>` with a decimal without leading zeros.
    #[error("line {line}: not \"index <n>\" with a decimal index without leading zeros")]
    Index {
        /// The line, counted from 1.
        line: usize,
    },
    /// More proof hashes than any 64-bit tree needs.
    #[error("line {line}: more than {max} proof hashes", max = PROOF_HASHES_MAX)]
    TooManyHashes {
        /// The line of the first hash too many, counted from 1.
        line: usize,
    },
    /// A proof line is not the base64 of 32 bytes.
    #[error("line {line}: proof hash: {source}")]
    Hash {
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        source: HashError,
    },
    /// The checkpoint note is malformed.
    #[error("checkpoint note: {0}")]
    Note(#[from] NoteError),
    /// The checkpoint did not parse, or did not verify with the log keys given.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint did not satisfy the policy.
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    /// The inclusion proof does not lead from the leaf to the checkpoint's root.
    #[error("inclusion proof: {0}")]
    Proof(#[from] ProofError),
}

/// A parsed tlog-proof.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlogProof {
    /// Opaque, unauthenticated extra data, if any.
    pub extra: Option<Vec<u8>>,
    /// The index of the entry in the log.
    pub index: LeafIndex,
    /// The inclusion proof, from the leaf's sibling up.
    pub hashes: Vec<Hash>,
    /// The signed checkpoint, with any cosignatures.
    pub checkpoint: Note,
}

impl TlogProof {
    /// Parses a tlog-proof, checking syntax, limits and that the note holds a checkpoint.
    pub fn parse(bytes: &[u8]) -> Result<TlogProof, TlogProofError> {
        if bytes.len() > TLOG_PROOF_BYTES_MAX {
            return Err(TlogProofError::TooLarge {
                len: bytes.len(),
                max: TLOG_PROOF_BYTES_MAX,
            });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| TlogProofError::NotUtf8)?;
        let mut lines = Lines {
            rest: text,
            line: 0,
        };

        if lines.next()? != TLOG_PROOF_HEADER {
            return Err(TlogProofError::Header);
        }
        let mut line = lines.next()?;
        let mut extra = None;
        if let Some(encoded) = line.strip_prefix("extra ") {
            extra = Some(decode_extra(encoded)?);
            line = lines.next()?;
        }
        let index = line
            .strip_prefix("index ")
            .and_then(|n| parse_decimal(n).ok())
            .ok_or(TlogProofError::Index { line: lines.line })?;
        let mut hashes = Vec::new();
        loop {
            let line = lines.next()?;
            if line.is_empty() {
                break;
            }
            if hashes.len() == PROOF_HASHES_MAX {
                return Err(TlogProofError::TooManyHashes { line: lines.line });
            }
            let hash = Hash::from_base64(line).map_err(|source| TlogProofError::Hash {
                line: lines.line,
                source,
            })?;
            hashes.push(hash);
        }
        let checkpoint = Note::parse(lines.rest.as_bytes())?;
        Checkpoint::parse(checkpoint.text())?;
        Ok(TlogProof {
            extra,
            index: LeafIndex(index),
            hashes,
            checkpoint,
        })
    }

    /// The tlog-proof text; the checkpoint note is formatted exactly as it was parsed.
    pub fn format(&self) -> Result<String, TlogProofError> {
        if self.hashes.len() > PROOF_HASHES_MAX {
            return Err(TlogProofError::TooManyHashes {
                line: 3 + usize::from(self.extra.is_some()) + PROOF_HASHES_MAX,
            });
        }
        let mut out = format!("{TLOG_PROOF_HEADER}\n");
        if let Some(extra) = &self.extra {
            if extra.is_empty() || extra.len() > EXTRA_BYTES_MAX {
                return Err(TlogProofError::Extra);
            }
            out.push_str(&format!("extra {}\n", BASE64.encode(extra)));
        }
        out.push_str(&format!("index {}\n", self.index.0));
        for hash in &self.hashes {
            out.push_str(&hash.to_base64());
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.checkpoint.format()?);
        Ok(out)
    }

    /// The inclusion proof this file claims, for a tree of the checkpoint's size.
    fn inclusion_proof(&self, checkpoint: &Checkpoint) -> InclusionProof {
        InclusionProof {
            leaf_index: self.index,
            tree_size: checkpoint.size,
            hashes: self.hashes.clone(),
        }
    }

    /// Verifies the checkpoint with the log keys in `verifiers` and the inclusion of the leaf
    /// with hash `leaf_hash` (the RFC 6962 leaf hash of the entry) at [`TlogProof::index`].
    /// Witness cosignatures are ignored unless `verifiers` lists their keys.
    pub fn verify<'v>(
        &self,
        leaf_hash: &Hash,
        verifiers: &'v Verifiers,
    ) -> Result<SignedCheckpoint<'v>, TlogProofError> {
        let signed = open_note(self.checkpoint.clone(), verifiers)?;
        self.inclusion_proof(&signed.checkpoint)
            .verify(leaf_hash, &signed.checkpoint.root)?;
        Ok(signed)
    }

    /// Verifies the checkpoint against a policy (a listed log key named after the origin, and
    /// the witness quorum) and the inclusion of the leaf with hash `leaf_hash`.
    pub fn verify_with_policy<'p>(
        &self,
        leaf_hash: &Hash,
        policy: &'p Policy,
    ) -> Result<PolicyVerified<'p>, TlogProofError> {
        let verified = policy.verify_note(&self.checkpoint)?;
        self.inclusion_proof(&verified.checkpoint)
            .verify(leaf_hash, &verified.checkpoint.root)?;
        Ok(verified)
    }
}

/// Newline-terminated lines off the front of the input, counting them.
struct Lines<'a> {
    rest: &'a str,
    line: usize,
}

impl<'a> Lines<'a> {
    fn next(&mut self) -> Result<&'a str, TlogProofError> {
        self.line += 1;
        let (line, rest) = self
            .rest
            .split_once('\n')
            .ok_or(TlogProofError::Truncated { line: self.line })?;
        self.rest = rest;
        Ok(line)
    }
}

fn decode_extra(encoded: &str) -> Result<Vec<u8>, TlogProofError> {
    // Four base64 characters per three bytes: refuse long input before decoding it.
    if encoded.is_empty() || encoded.len() > EXTRA_BYTES_MAX.div_ceil(3) * 4 {
        return Err(TlogProofError::Extra);
    }
    let extra = BASE64.decode(encoded).map_err(|_| TlogProofError::Extra)?;
    if extra.len() > EXTRA_BYTES_MAX {
        return Err(TlogProofError::Extra);
    }
    Ok(extra)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use crate::keys::Cosigner;
    use crate::keys::{Ed25519Signer, Verifier};
    use crate::note::NoteSignature;
    use crate::proof::inclusion_proof;
    use crate::tree::{MemoryTree, TreeSize};
    use proptest::prelude::*;

    const ORIGIN: &str = "example.com/fancylog";

    fn log_signer() -> Ed25519Signer {
        Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[5; 32])).unwrap()
    }

    fn witness() -> Cosigner {
        Cosigner::new(
            "witness1.example",
            ed25519_dalek::SigningKey::from_bytes(&[6; 32]),
        )
        .unwrap()
    }

    fn log_verifiers() -> Verifiers {
        Verifiers::from_verifiers([log_signer().verifier()]).unwrap()
    }

    /// A log of `size` leaves, and a tlog-proof for leaf `index` in it.
    fn proof_for(size: u64, index: u64, extra: Option<Vec<u8>>) -> TlogProof {
        let mut log = MemoryTree::new();
        for i in 0..size {
            log.append(leaf_hash(&i.to_be_bytes())).unwrap();
        }
        let checkpoint = Checkpoint::new(ORIGIN, TreeSize(size), log.root());
        let mut note = checkpoint.sign(&[&log_signer()]).unwrap();
        note.sign(&witness().at(1_700_000_000).unwrap()).unwrap();
        let proof = inclusion_proof(&log.store, LeafIndex(index), TreeSize(size)).unwrap();
        TlogProof {
            extra,
            index: LeafIndex(index),
            hashes: proof.hashes,
            checkpoint: note,
        }
    }

    fn leaf(index: u64) -> Hash {
        leaf_hash(&index.to_be_bytes())
    }

    #[test]
    fn round_trip_and_verify() {
        let proof = proof_for(109, 73, Some(b"age-v1.2.1-darwin-arm64.tar.gz".to_vec()));
        let text = proof.format().unwrap();
        assert!(text.starts_with(
            "c2sp.org/tlog-proof@v1\nextra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6\nindex 73\n"
        ));
        assert!(text.ends_with(&proof.checkpoint.format().unwrap()));
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed, proof);
        assert_eq!(parsed.format().unwrap(), text);

        let verifiers = log_verifiers();
        let signed = parsed.verify(&leaf(73), &verifiers).unwrap();
        assert_eq!(signed.checkpoint.size, TreeSize(109));
        assert!(matches!(
            parsed.verify(&leaf(74), &verifiers),
            Err(TlogProofError::Proof(ProofError::Mismatch))
        ));
        // Another log's keys do not open the checkpoint.
        let other =
            Ed25519Signer::new(ORIGIN, ed25519_dalek::SigningKey::from_bytes(&[9; 32])).unwrap();
        let others = Verifiers::from_verifiers([other.verifier()]).unwrap();
        assert!(matches!(
            parsed.verify(&leaf(73), &others),
            Err(TlogProofError::Checkpoint(CheckpointError::Note(
                NoteError::NoKnownSignature
            )))
        ));
        // A proof for another index does not verify.
        let mut moved = parsed.clone();
        moved.index = LeafIndex(72);
        assert!(moved.verify(&leaf(72), &verifiers).is_err());
    }

    #[test]
    fn verify_with_policy_needs_the_quorum() {
        let proof = proof_for(20, 0, None);
        let log_vkey = log_signer().verifier();
        let witness_vkey = witness().verifier();
        let policy = Policy::parse(&format!(
            "log {log_vkey}\nwitness W {witness_vkey}\nquorum W\n"
        ))
        .unwrap();
        let verified = proof.verify_with_policy(&leaf(0), &policy).unwrap();
        assert_eq!(verified.cosignatures.len(), 1);
        assert_eq!(verified.cosignatures[0].timestamp, 1_700_000_000);
        assert!(matches!(
            proof.verify_with_policy(&leaf(1), &policy),
            Err(TlogProofError::Proof(_))
        ));

        let other_witness = Cosigner::new(
            "witness2.example",
            ed25519_dalek::SigningKey::from_bytes(&[7; 32]),
        )
        .unwrap()
        .verifier();
        let strict = Policy::parse(&format!(
            "log {log_vkey}\nwitness W {witness_vkey}\nwitness V {other_witness}\n\
             group both all W V\nquorum both\n"
        ))
        .unwrap();
        assert!(matches!(
            proof.verify_with_policy(&leaf(0), &strict),
            Err(TlogProofError::Policy(PolicyError::QuorumNotMet {
                cosignatures: 1
            }))
        ));
        assert!(matches!(witness_vkey, Verifier::Cosignature(_)));
    }

    #[test]
    fn single_leaf_tree_has_an_empty_proof() {
        let proof = proof_for(1, 0, None);
        assert!(proof.hashes.is_empty());
        let text = proof.format().unwrap();
        assert!(text.starts_with("c2sp.org/tlog-proof@v1\nindex 0\n\n"));
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        parsed.verify(&leaf(0), &log_verifiers()).unwrap();
    }

    #[test]
    fn malformed_proofs_are_rejected() {
        let good = proof_for(109, 73, None).format().unwrap();
        let (head, note) = good.split_once("\n\n").unwrap();
        let head = format!("{head}\n");
        let note = note.to_owned();
        let hash_line = Hash::EMPTY_ROOT.to_base64();
        let check = |text: String, want: &dyn Fn(&TlogProofError) -> bool| {
            let err = TlogProof::parse(text.as_bytes()).unwrap_err();
            assert!(want(&err), "{text:?}: {err}");
        };

        check(good.replacen("@v1", "@v2", 1), &|e| {
            matches!(e, TlogProofError::Header)
        });
        check(good.replacen("index 73", "index 073", 1), &|e| {
            matches!(e, TlogProofError::Index { line: 2 })
        });
        check(good.replacen("index 73", "index  73", 1), &|e| {
            matches!(e, TlogProofError::Index { line: 2 })
        });
        check(good.replacen("index 73", "index -1", 1), &|e| {
            matches!(e, TlogProofError::Index { .. })
        });
        check(good.replacen("index 73\n", "", 1), &|e| {
            matches!(e, TlogProofError::Index { line: 2 })
        });
        check(good.replacen("index", "extra !!!!\nindex", 1), &|e| {
            matches!(e, TlogProofError::Extra)
        });
        check(good.replacen("index", "extra \nindex", 1), &|e| {
            matches!(e, TlogProofError::Extra)
        });
        // A 31-byte hash, a 33-byte hash, and bad base64 on the first proof line (line 3).
        let first = head.lines().nth(2).unwrap().to_owned();
        let short = BASE64.encode([0u8; 31]);
        let long = BASE64.encode([0u8; 33]);
        check(good.replacen(&first, &short, 1), &|e| {
            matches!(
                e,
                TlogProofError::Hash {
                    line: 3,
                    source: HashError::Length(31)
                }
            )
        });
        check(good.replacen(&first, &long, 1), &|e| {
            matches!(
                e,
                TlogProofError::Hash {
                    line: 3,
                    source: HashError::Length(33)
                }
            )
        });
        check(good.replacen(&first, &first.replace('=', "!"), 1), &|e| {
            matches!(e, TlogProofError::Hash { line: 3, .. })
        });
        // Too many hashes.
        let many = format!(
            "{TLOG_PROOF_HEADER}\nindex 1\n{}\n{note}",
            format!("{hash_line}\n").repeat(PROOF_HASHES_MAX + 1)
        );
        check(many, &|e| {
            matches!(e, TlogProofError::TooManyHashes { line: 67 })
        });
        // No blank line before the checkpoint: the note's lines are read as hashes.
        check(format!("{head}{note}"), &|e| {
            matches!(e, TlogProofError::Hash { .. })
        });
        // An extra blank line: the note starts with an empty line and has no valid checkpoint.
        check(format!("{head}\n\n{note}"), &|e| {
            matches!(e, TlogProofError::Checkpoint(_) | TlogProofError::Note(_))
        });
        // A note that is not a checkpoint.
        let mut not_checkpoint = Note::new("hello\n").unwrap();
        not_checkpoint.sign(&log_signer()).unwrap();
        check(
            format!("{head}\n{}", not_checkpoint.format().unwrap()),
            &|e| {
                matches!(
                    e,
                    TlogProofError::Checkpoint(CheckpointError::TooFewLines { lines: 1 })
                )
            },
        );
        // Missing final newline of the note, and non-UTF-8.
        check(good.trim_end().to_owned(), &|e| {
            matches!(e, TlogProofError::Note(_))
        });
        let mut bytes = good.clone().into_bytes();
        bytes[5] = 0xff;
        assert!(matches!(
            TlogProof::parse(&bytes),
            Err(TlogProofError::NotUtf8)
        ));
        // Every truncation fails, up to the end of the log's signature line; dropping whole
        // signature lines after it leaves a well-formed (less cosigned) proof.
        let witness_line = good.rfind('\u{2014}').unwrap();
        for end in 0..witness_line {
            if good.is_char_boundary(end) {
                assert!(TlogProof::parse(&good.as_bytes()[..end]).is_err(), "{end}");
            }
        }
        let fewer = TlogProof::parse(&good.as_bytes()[..witness_line]).unwrap();
        assert_eq!(fewer.checkpoint.signatures().len(), 1);
        // Oversized input is refused before anything is decoded.
        let oversized = vec![b'a'; TLOG_PROOF_BYTES_MAX + 1];
        assert!(matches!(
            TlogProof::parse(&oversized),
            Err(TlogProofError::TooLarge { .. })
        ));
    }

    #[test]
    fn unknown_signature_types_in_the_checkpoint_are_kept() {
        let mut proof = proof_for(9, 4, None);
        proof
            .checkpoint
            .add_signature(NoteSignature {
                name: "pq.example".to_owned(),
                key_id: crate::note::KeyId([0xff, 0, 0, 1]),
                signature: vec![3; 2420],
            })
            .unwrap();
        let text = proof.format().unwrap();
        let parsed = TlogProof::parse(text.as_bytes()).unwrap();
        assert_eq!(parsed.checkpoint.signatures().len(), 3);
        parsed.verify(&leaf(4), &log_verifiers()).unwrap();
    }

    #[test]
    fn formatting_checks_limits() {
        let mut proof = proof_for(3, 1, Some(Vec::new()));
        assert!(matches!(proof.format(), Err(TlogProofError::Extra)));
        proof.extra = None;
        proof.hashes = vec![Hash::EMPTY_ROOT; PROOF_HASHES_MAX + 1];
        assert!(matches!(
            proof.format(),
            Err(TlogProofError::TooManyHashes { .. })
        ));
    }

    proptest! {
        #[test]
        fn parse_format_round_trip(
            extra in proptest::option::of(proptest::collection::vec(any::<u8>(), 1..64)),
            size in 1u64..300,
            index_seed in any::<u64>(),
        ) {
            let index = index_seed % size;
            let proof = proof_for(size, index, extra);
            let text = proof.format().unwrap();
            let parsed = TlogProof::parse(text.as_bytes()).unwrap();
            prop_assert_eq!(&parsed, &proof);
            parsed.verify(&leaf(index), &log_verifiers()).unwrap();
        }
    }
}
