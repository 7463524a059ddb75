//! What the replicated log replicates: the commands a Raft entry carries, what applying one
//! returns, and the openraft type configuration that ties them together.
//!
//! Everything here is encoded into the Raft log and sent between nodes, so it is plain data with
//! no behaviour. Anything that ends up in replicated state and would differ between replicas if
//! each chose it (a timestamp) is chosen once, by the leader, and carried in the command.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

use crate::runtime::CairnRuntime;

/// A node's identity in the cluster. Never reused: a node whose disk was wiped rejoins under a
/// new id.
pub type NodeId = u64;

/// How other nodes and clients reach a node. Part of the replicated membership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    /// Base URL of the node's public HTTP API: what the admin API reports.
    pub api_url: String,
    /// Base `https://` URL of the node's cluster listener, the only place Raft RPCs,
    /// forwarded writes and catch-up's fetches are served (mutual TLS with cluster
    /// certificates).
    pub cluster_url: String,
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (raft {})", self.api_url, self.cluster_url)
    }
}

/// The short name that identifies a log inside the cluster (`artifacts`, `certificates`); the
/// log's public identity is its origin.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LogName(pub String);

impl fmt::Display for LogName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The newest format of what Raft replicates (the [`Command`] encoding, in entries and in the
/// Raft messages that carry them) that this node reads. Each Raft message names the format its
/// entries need ([`Command::format`], `network::RAFT_FORMAT_HEADER`), and a node refuses a
/// message of a newer format with an error that says so rather than misread it. A new `Command`
/// variant goes at the end (older entries still decode) and raises this; it must not be proposed
/// before every member runs a version that reads it (rotation checks that every member serves
/// the successor, which only a version that knows rotations does). Format 2: `Rotate`.
pub const RAFT_FORMAT: u32 = 2;

/// The payload of one Raft entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Leaves for one log, in the order the leader's sequencer pooled them.
    Append(AppendBatch),
    /// Freezes a log and opens its configured successor (`crate::lifecycle`). Last, so that
    /// entries written before it existed still decode (postcard numbers variants in order).
    Rotate(Rotation),
}

impl Command {
    /// The [`RAFT_FORMAT`] that introduced this command: what a node must read to apply it.
    /// A Raft message names the highest of its entries', so messages without new commands
    /// still reach nodes of an older version during a rolling upgrade.
    pub fn format(&self) -> u32 {
        match self {
            Command::Append(_) => 1,
            Command::Rotate(_) => 2,
        }
    }
}

/// Freeze `log` and open `successor` in its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The log to freeze.
    pub log: LogName,
    /// The log that takes its appends from now on: configured on every node with
    /// `succeeds = <log>`, and still empty.
    pub successor: LogName,
    /// When the leader proposed the rotation, in milliseconds since the Unix epoch: the end
    /// of the frozen log's window and the start of its successor's in the trusted root.
    pub timestamp_unix_ms: u64,
}

/// A batch of leaves for one log: one Raft entry, however many leaves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendBatch {
    /// The log to append to.
    pub log: LogName,
    /// The leaves: canonical entry bodies, already validated and signature-checked by the node
    /// that accepted them.
    #[serde(with = "leaf_bytes")]
    pub leaves: Vec<Vec<u8>>,
    /// When the leader sequenced the batch, in milliseconds since the Unix epoch. Chosen once
    /// so every replica stores the same integrated time.
    pub timestamp_unix_ms: u64,
}

/// Serde for a batch's leaves with each leaf as one byte string: plain `Vec<u8>` goes through
/// serde one element at a time, which cost a fill 5 to 7% of its CPU. Postcard writes both forms
/// as the same bytes (a length, then the bytes), so entries already on disk read alike.
mod leaf_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    use serde_bytes::{ByteBuf, Bytes};

    pub(super) fn serialize<S: Serializer>(leaves: &[Vec<u8>], out: S) -> Result<S::Ok, S::Error> {
        out.collect_seq(leaves.iter().map(|leaf| Bytes::new(leaf)))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        input: D,
    ) -> Result<Vec<Vec<u8>>, D::Error> {
        let leaves = Vec::<ByteBuf>::deserialize(input)?;
        Ok(leaves.into_iter().map(ByteBuf::into_vec).collect())
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::Append(batch) => {
                write!(f, "append {} leaves to {}", batch.leaves.len(), batch.log)
            }
            Command::Rotate(rotation) => {
                write!(f, "freeze {} and open {}", rotation.log, rotation.successor)
            }
        }
    }
}

/// What applying one Raft entry produced, returned to the proposer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandOutcome {
    /// The entry carried no command (a blank or membership entry).
    #[default]
    Nothing,
    /// A batch was applied.
    Appended(BatchOutcome),
    /// The command was refused by every replica alike (for example an unknown log); state is
    /// unchanged.
    Refused(String),
    /// A rotation was applied: the log is frozen at its final checkpoint.
    Rotated(crate::lifecycle::RotationRecord),
    /// An append was refused because its log is frozen; state is unchanged.
    Frozen {
        /// The frozen log.
        log: LogName,
        /// The log that takes its appends.
        successor: LogName,
    },
}

/// The result of applying an [`AppendBatch`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchOutcome {
    /// The log appended to.
    pub log: LogName,
    /// One outcome per leaf, in batch order.
    pub leaves: Vec<LeafOutcome>,
    /// The tree size after the batch.
    pub tree_size: u64,
    /// The signed checkpoint (a C2SP signed note) covering every leaf of the batch.
    pub checkpoint: String,
}

/// Where one leaf of a batch ended up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeafOutcome {
    /// Appended at this index.
    Appended {
        /// The leaf index.
        index: u64,
    },
    /// An identical leaf was already in the log (or earlier in the batch) at this index; nothing
    /// was appended.
    Duplicate {
        /// The index of the existing leaf.
        index: u64,
    },
}

impl LeafOutcome {
    /// The index the leaf is at, new or existing.
    pub fn index(self) -> u64 {
        match self {
            LeafOutcome::Appended { index } | LeafOutcome::Duplicate { index } => index,
        }
    }
}

openraft::declare_raft_types!(
    /// Cairn's openraft types.
    pub TypeConfig:
        D = Command,
        R = CommandOutcome,
        NodeId = NodeId,
        Node = NodeAddress,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = CairnRuntime,
);

#[cfg(test)]
mod tests {
    use super::*;

    /// `AppendBatch` before its leaves were byte strings: entries on disk were written like this.
    #[derive(Serialize, Deserialize)]
    struct PlainBatch {
        log: LogName,
        leaves: Vec<Vec<u8>>,
        timestamp_unix_ms: u64,
    }

    #[test]
    fn a_batch_encodes_as_it_did_with_plain_vectors() {
        let leaves = vec![vec![], b"{\"kind\":\"x\"}".to_vec(), vec![0xff; 300]];
        let batch = AppendBatch {
            log: LogName("artifacts".to_owned()),
            leaves: leaves.clone(),
            timestamp_unix_ms: 1_700_000_000_123,
        };
        let plain = PlainBatch {
            log: batch.log.clone(),
            leaves,
            timestamp_unix_ms: batch.timestamp_unix_ms,
        };
        let bytes = postcard::to_stdvec(&batch).expect("encode");
        assert_eq!(bytes, postcard::to_stdvec(&plain).expect("encode plain"));
        let decoded: AppendBatch = postcard::from_bytes(&bytes).expect("decode");
        assert_eq!(decoded, batch);
        let json = serde_json::to_string(&batch).expect("json");
        assert_eq!(json, serde_json::to_string(&plain).expect("json plain"));
        assert_eq!(
            serde_json::from_str::<AppendBatch>(&json).expect("from json"),
            batch
        );
    }
}
