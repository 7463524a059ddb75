//! What the pushed witnesses cosigned, as a ledger of every cosignature they returned (to the
//! nodes or to the lying operator), checked as each one is made:
//! - a witness never cosigns a size smaller than one it cosigned before, nor a second root for
//!   a size it cosigned;
//! - for each origin and size, at most one root gathers the policy's quorum of cosignatures,
//!   counted across witnesses; and the operator's fork ([`crate::malicious`]) gathers none.
//!
//! Source: docs/ARCHITECTURE.md, "Invariants of the log" 3 and 7 (a witness's stored size never
//! decreases, it never cosigns an inconsistent checkpoint); and when a log signs two roots for
//! one size, at most one gathers the quorum, and the one shown to fewer witnesses than the
//! quorum gathers none.

use std::collections::{BTreeMap, BTreeSet};

use tlog::Hash;
use tlog::checkpoint::Checkpoint;
use tlog::policy::Policy;

/// Every cosignature returned, and what was wrong.
#[derive(Debug, Default)]
pub struct Ledger {
    /// Per (witness, origin): every size it cosigned, with the root.
    by_witness: BTreeMap<(String, String), BTreeMap<u64, Hash>>,
    /// Per (origin, size): each root and the witnesses (policy names) that cosigned it.
    by_size: BTreeMap<(String, u64), BTreeMap<Hash, BTreeSet<String>>>,
    /// Findings already reported: two roots with the quorum (root `None`), the fork with it.
    reported: BTreeSet<(String, u64, Option<Hash>)>,
    /// What went wrong (drained into the checker's violations every tick).
    pub violations: Vec<(&'static str, String)>,
}

impl Ledger {
    /// Records that `witness` (its policy name) cosigned `checkpoint`, and checks it. `fork` is
    /// the operator's second root for a size, if one was made.
    pub fn record(
        &mut self,
        policy: &Policy,
        witness: &str,
        checkpoint: &Checkpoint,
        fork: Option<(&str, u64, Hash)>,
    ) {
        let (origin, size, root) = (&checkpoint.origin, checkpoint.size.0, checkpoint.root);
        let sizes = self
            .by_witness
            .entry((witness.to_owned(), origin.clone()))
            .or_default();
        if let Some((&largest, _)) = sizes.last_key_value()
            && largest > size
        {
            self.violations.push((
                "cosigning",
                format!("{witness} cosigned {origin} size {size} after size {largest}"),
            ));
        }
        match sizes.get(&size) {
            Some(known) if *known != root => self.violations.push((
                "cosigning",
                format!(
                    "{witness} cosigned two roots for {origin} size {size}: {known:?} and {root:?}"
                ),
            )),
            Some(_) => {}
            None => {
                sizes.insert(size, root);
            }
        }
        let roots = self.by_size.entry((origin.clone(), size)).or_default();
        roots.entry(root).or_default().insert(witness.to_owned());
        let with_quorum: Vec<Hash> = roots
            .iter()
            .filter(|(_, witnesses)| policy.is_satisfied_by(witnesses.iter().map(String::as_str)))
            .map(|(root, _)| *root)
            .collect();
        // Each finding is reported once, not again for every later cosignature.
        if with_quorum.len() > 1 && self.reported.insert((origin.clone(), size, None)) {
            self.violations.push((
                "cosigning",
                format!(
                    "{} roots of {origin} size {size} gathered the witness quorum",
                    with_quorum.len()
                ),
            ));
        }
        if let Some((fork_origin, fork_size, fork_root)) = fork
            && (fork_origin, fork_size) == (origin.as_str(), size)
            && with_quorum.contains(&fork_root)
            && self
                .reported
                .insert((origin.clone(), size, Some(fork_root)))
        {
            self.violations.push((
                "cosigning",
                format!("the operator's fork of {origin} size {size} gathered the witness quorum"),
            ));
        }
    }
}
