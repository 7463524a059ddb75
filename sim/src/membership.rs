//! Membership changes as faults: a node joins, one leaves, one is replaced, a wiped machine
//! rejoins under a new id. Each runs through the leader's `add_learner` and `change_membership`,
//! as the admin API does, while the other faults go on; a change that fails (no leader, the
//! leader deposed mid-change) is left as it is, and the heal reconciles the membership with the
//! nodes the simulator still runs.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use node::types::NodeId;
use tokio::time::Instant;

use crate::cluster::{Cluster, address};
use crate::trace::event;

/// One membership change.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    /// A new node joins as a voter.
    Add,
    /// A voter leaves and stops for good.
    Remove(NodeId),
    /// A voter is replaced by a new node with empty disks (a wiped machine rejoining under a
    /// new id is the same thing).
    Replace(NodeId),
}

/// How long one step (a learner catching up, a joint-consensus round) may take.
const STEP: Duration = Duration::from_secs(5);

/// The voters and learners the current leader knows of, and the leader.
fn membership(cluster: &Cluster) -> Option<(NodeId, BTreeSet<NodeId>, BTreeSet<NodeId>)> {
    let leader = cluster
        .running()
        .iter()
        .find_map(|node| node.raft().metrics().borrow().current_leader)?;
    let node = cluster.node(leader)?;
    let metrics = node.raft().metrics().borrow().clone();
    if !metrics.state.is_leader() {
        return None;
    }
    let config = metrics.membership_config.membership();
    Some((
        leader,
        config.voter_ids().collect(),
        config.learner_ids().collect(),
    ))
}

/// Makes `voters` the voters, through the leader, adding learners for new ones first.
async fn set_voters(cluster: &Cluster, voters: &BTreeSet<NodeId>) -> Result<(), String> {
    let (leader, _, learners) = membership(cluster).ok_or("no leader")?;
    let node = cluster.node(leader).ok_or("leader down")?;
    let raft = node.raft().clone();
    for &id in voters {
        if !learners.contains(&id) {
            let added = tokio::time::timeout(STEP, raft.add_learner(id, address(id), false)).await;
            match added {
                Ok(Ok(_)) => {}
                Ok(Err(error)) => return Err(format!("add learner n{id}: {error}")),
                Err(_) => return Err(format!("add learner n{id}: timed out")),
            }
        }
    }
    // Through the node's own rule, as the admin API: a leader never removes itself.
    match tokio::time::timeout(STEP, node.change_voters(voters.clone(), false)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("change membership: {error}")),
        Err(_) => Err("change membership: timed out".into()),
    }
}

/// Carries out `change` (in its own task: it takes a while and may fail).
pub async fn change(cluster: Arc<Cluster>, change: Change) {
    let Some((_, voters, _)) = membership(&cluster) else {
        event(
            &cluster.trace,
            "fault",
            &format!("membership {change:?}: no leader"),
        );
        return;
    };
    let mut target = voters.clone();
    let (joining, leaving) = match change {
        Change::Add => (Some(cluster.add_slot()), None),
        Change::Remove(old) => (None, Some(old)),
        Change::Replace(old) => (Some(cluster.add_slot()), Some(old)),
    };
    if let Some(new) = joining {
        cluster.start(new).await;
        target.insert(new);
    }
    if let Some(old) = leaving {
        target.remove(&old);
    }
    event(
        &cluster.trace,
        "fault",
        &format!("membership {change:?}: voters {voters:?} -> {target:?}"),
    );
    match set_voters(&cluster, &target).await {
        Ok(()) => {
            event(
                &cluster.trace,
                "fault",
                &format!("membership now {target:?}"),
            );
            if let Some(old) = leaving {
                cluster.retire(old).await;
            }
        }
        Err(error) => event(
            &cluster.trace,
            "fault",
            &format!("membership {change:?} failed: {error}"),
        ),
    }
}

/// After the heal: makes the voters exactly the nodes the simulator runs, retrying until
/// `deadline`. Returns what is still wrong if it cannot.
pub async fn reconcile(cluster: &Cluster, deadline: Instant) -> Result<(), String> {
    let wanted: BTreeSet<NodeId> = cluster.ids().into_iter().collect();
    loop {
        let problem = match membership(cluster) {
            Some((_, voters, _)) if voters == wanted => return Ok(()),
            Some(_) => match set_voters(cluster, &wanted).await {
                Ok(()) => continue,
                Err(error) => error,
            },
            None => "no leader".to_string(),
        };
        if Instant::now() >= deadline {
            return Err(format!(
                "membership not reconciled to {wanted:?}: {problem}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
