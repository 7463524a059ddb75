//! Raft's persistent state, from every node's metrics as they change: a node never shows a term
//! below one it granted a vote in, across restarts too (the term and vote are persistent state:
//! a node that forgets them can vote twice in one term and let two leaders commit different
//! entries at one index). Only granted votes count: openraft grants a vote after saving it,
//! while its metrics may show a term it has not saved yet, which a crash may legitimately lose.
//!
//! Source: the Raft paper's Figure 2 ("persistent state on all servers: currentTerm,
//! votedFor"); docs/ARCHITECTURE.md, "Invariants of the log" 8. Election Safety as the paper
//! states it (one leader per term) is *not* checked: openraft 0.9 without `single-term-leader`
//! (as Cairn builds it) identifies a leader by (term, node id) and allows several leaders in one
//! term, each with its own leader id, which its log ids carry; that one committed entry exists
//! per index is what [`super::agreement`], [`super::no_fork`] and [`super::durability`] check.

use std::collections::BTreeMap;

use node::types::NodeId;

/// What the nodes' votes and metrics have shown so far.
#[derive(Debug, Default)]
pub struct RaftHistory {
    /// Per node, the highest term it granted a vote in (so saved durably).
    voted_term: BTreeMap<NodeId, u64>,
    /// Violations found since the checker last collected them.
    pub violations: Vec<String>,
}

impl RaftHistory {
    /// Records that node `id` granted a vote in `term` (its answer left it, so it had saved
    /// the vote).
    pub fn granted(&mut self, id: NodeId, term: u64) {
        let voted = self.voted_term.entry(id).or_insert(term);
        *voted = (*voted).max(term);
    }

    /// Records one metrics snapshot of node `id`. Term 0 is skipped: it is also what openraft
    /// shows before a restarted node has read its stored vote.
    pub fn observe(&mut self, id: NodeId, term: u64) {
        if term == 0 {
            return;
        }
        if let Some(&voted) = self.voted_term.get(&id)
            && term < voted
        {
            self.violations.push(format!(
                "n{id}: term {term} after granting a vote in term {voted} (a lost vote write)"
            ));
            // Report each regression once.
            self.voted_term.insert(id, term);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_forgotten_vote_is_a_violation_and_an_unsaved_term_is_not() {
        let mut history = RaftHistory::default();
        history.observe(1, 3);
        history.granted(2, 3);
        history.observe(2, 3);
        history.observe(2, 4);
        // A term shown but never voted in may be lost by a crash.
        history.observe(1, 2);
        assert!(history.violations.is_empty(), "{:?}", history.violations);
        history.observe(2, 2);
        history.observe(2, 2);
        assert_eq!(history.violations.len(), 1, "{:?}", history.violations);
    }
}
