//! Raft's own safety, from every node's metrics as they change: at most one leader per term
//! (Election Safety), and a node never shows a term below one it granted a vote in, across
//! restarts too (the term and vote are persistent state: a node that forgets them can vote
//! twice in one term). Only granted votes count: openraft grants a vote after saving it, while
//! its metrics may show a term it has not saved yet, which a crash may legitimately lose.
//!
//! Source: the Raft paper's Figure 3 (Election Safety) and Figure 2 ("persistent state on all
//! servers: currentTerm, votedFor"); `research/raft-sim.md` §5.1 items 1 and 2. These hold for
//! what each node *believes*, so they are checked on every metrics change rather than at
//! ticks, which would miss a short-lived second leader.

use std::collections::BTreeMap;

use node::types::NodeId;

/// What the nodes' metrics have shown so far.
#[derive(Debug, Default)]
pub struct RaftHistory {
    leader_of_term: BTreeMap<u64, NodeId>,
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
    pub fn observe(&mut self, id: NodeId, term: u64, is_leader: bool) {
        if term == 0 {
            return;
        }
        if is_leader {
            match self.leader_of_term.get(&term) {
                Some(&other) if other != id => self
                    .violations
                    .push(format!("two leaders in term {term}: n{other} and n{id}")),
                Some(_) => {}
                None => {
                    self.leader_of_term.insert(term, id);
                }
            }
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
    fn a_second_leader_in_a_term_and_a_forgotten_vote_are_violations() {
        let mut history = RaftHistory::default();
        history.observe(1, 3, true);
        history.granted(2, 3);
        history.observe(2, 3, false);
        history.observe(1, 3, true);
        history.observe(2, 4, true);
        // A term shown but never voted in may be lost by a crash.
        history.observe(1, 2, false);
        assert!(history.violations.is_empty(), "{:?}", history.violations);
        history.observe(3, 4, true);
        history.observe(2, 2, false);
        assert_eq!(history.violations.len(), 2, "{:?}", history.violations);
    }
}
