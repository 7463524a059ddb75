//! Appends a follower relays to the leader, verified once: the follower decodes and checks a
//! client's entry, then sends only its canonical leaf, batched with other requests' leaves, to
//! the leader's cluster listener ([`APPENDS_PATH`]). Mutual TLS proves a member sent them, so
//! the leader sequences them without checking them again, and answers each with what the
//! follower needs to build the client's answer itself (the same code the leader answers its
//! own clients with): `service::Appended`, the log it went to and, for Rekor v1, the entry's
//! integrated time.
//!
//! The wire format is postcard, preceded by a format number (a varint) so that a node refuses
//! a batch or an answer in a format it does not read instead of misreading it. Everything is
//! bounded: leaves per batch, leaf bytes per batch, body and answer bytes, leaves waiting and
//! batches in flight.
//!
//! [`Forwarder`] batches without a timer: a leaf goes at once when nothing is in flight;
//! while a batch is in flight, leaves wait for it to return or until a full batch waits. At low
//! load a batch is one leaf and costs no wait; under load batches grow with the leader's
//! latency.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::ClusterClient;
use crate::metrics::Metrics;
use crate::node::FORWARD_TIMEOUT;
use crate::types::{LogName, NodeAddress, NodeId};

/// The leader's endpoint for batches of verified leaves (cluster listener only).
pub const APPENDS_PATH: &str = "/internal/appends";
/// The format of batches and answers this node writes and reads.
pub const APPENDS_FORMAT: u32 = 1;
/// Most leaves in one batch.
pub const BATCH_LEAVES_MAX: usize = 256;
/// Most leaf bytes in one batch (at least one largest leaf, `tlog::entry::BODY_BYTES_MAX`).
pub const BATCH_LEAF_BYTES_MAX: usize = 4 * 1024 * 1024;
/// Most bytes of a batch's body: its leaves and, per leaf, a log name and framing.
pub const BATCH_BODY_BYTES_MAX: usize = BATCH_LEAF_BYTES_MAX + BATCH_LEAVES_MAX * 1024;
/// Most bytes of an answer: per leaf a checkpoint (with cosignatures), a proof and a log name.
pub const ANSWER_BYTES_MAX: usize = 16 * 1024 * 1024;
/// Most leaves waiting on one follower for a batch; past it an append is refused (429).
const WAITING_MAX: usize = 8 * BATCH_LEAVES_MAX;
/// Most batches in flight to the leader from one follower.
const IN_FLIGHT_MAX: usize = 4;
/// The longest log name a batch carries (names are short words in the configuration).
const LOG_NAME_BYTES_MAX: usize = 256;

/// Where a forwarded leaf goes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Destination {
    /// The log of this family that takes appends when the leaf is sequenced.
    Family(LogName),
    /// This log, which must be open.
    Exact(LogName),
}

impl Destination {
    fn name(&self) -> &LogName {
        match self {
            Destination::Family(log) | Destination::Exact(log) => log,
        }
    }
}

/// One verified, canonical leaf a follower relays.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardedLeaf {
    /// Where it goes.
    pub destination: Destination,
    /// The canonical entry body, already checked by the follower.
    #[serde(with = "serde_bytes")]
    pub leaf: Vec<u8>,
    /// Whether the answer must carry the entry's integrated time (Rekor v1 answers do).
    pub integrated_time: bool,
}

/// The leader's answer for one leaf.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeafAnswer {
    /// Committed and answered: `service::Appended`, with its log.
    Appended(AppendedLeaf),
    /// Not answered, and why: the client gets the error the leader would have given it.
    Failed(Failure),
}

/// `service::Appended` on the wire, with the log the leaf went to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendedLeaf {
    /// The log the leaf is in (for a family, the one open when it was sequenced).
    pub log: LogName,
    /// The entry's leaf index.
    pub index: u64,
    /// Whether it was already logged.
    pub duplicate: bool,
    /// The size `checkpoint` signs.
    pub tree_size: u64,
    /// The signed checkpoint (with cosignatures for a witnessed log).
    pub checkpoint: String,
    /// The inclusion proof's hashes, from the leaf up.
    pub hashes: Vec<[u8; 32]>,
    /// The root the proof leads to.
    pub root: [u8; 32],
    /// The entry's integrated time, when asked for and known to the leader.
    pub integrated_time_ms: Option<u64>,
}

/// Why the leader did not answer a leaf with its entry: one case per error a client of the
/// leader would have got (`http::log_api` maps each to that error).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The receiver does not lead (it never forwards again).
    #[error("the receiver does not lead")]
    NoLeader,
    /// The exact log named is frozen.
    #[error("log {log} is frozen; its successor is {successor}")]
    Frozen {
        /// The frozen log.
        log: LogName,
        /// Its successor.
        successor: LogName,
    },
    /// The exact log named is not open yet.
    #[error("log {log} opens when {predecessor} is rotated")]
    NotOpen {
        /// The log.
        log: LogName,
        /// The log whose rotation opens it.
        predecessor: LogName,
    },
    /// No such log.
    #[error("no log named {0}")]
    UnknownLog(LogName),
    /// The sequencer's pool is full.
    #[error("{0} submissions are waiting")]
    Overloaded(u64),
    /// Every replica refused the batch.
    #[error("refused: {0}")]
    Refused(String),
    /// The leaf may or may not be committed.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// Committed, but no checkpoint covering it met the witness quorum in time.
    #[error("{0}")]
    NotWitnessed(String),
    /// Committed, but reading its proof or time failed.
    #[error("{0}")]
    Storage(String),
    /// Committed, but the proof does not lead to the checkpoint: a bug.
    #[error("{0}")]
    ProofMismatch(String),
}

/// Why a batch or an answer does not decode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The body is larger than its bound.
    #[error("{what} of {bytes} bytes is larger than {max}")]
    TooLarge {
        /// A batch or an answer.
        what: &'static str,
        /// Its size.
        bytes: usize,
        /// The bound.
        max: usize,
    },
    /// A format this node does not read.
    #[error("format {0}, this node reads format {APPENDS_FORMAT}")]
    Format(u32),
    /// Not postcard of the expected shape, or bytes left over.
    #[error("malformed: {0}")]
    Malformed(String),
    /// More leaves than a batch may hold, or none.
    #[error("{0} leaves, want 1 to {BATCH_LEAVES_MAX}")]
    Count(usize),
    /// A leaf larger than an entry may be, or more leaf bytes than a batch may hold.
    #[error("leaf bytes past their bound: {0}")]
    LeafBytes(String),
    /// An answer for another number of leaves than were sent.
    #[error("{got} answers for {sent} leaves")]
    Answers {
        /// Answers received.
        got: usize,
        /// Leaves sent.
        sent: usize,
    },
}

fn frame<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut bytes = postcard::to_stdvec(&APPENDS_FORMAT)
        .map_err(|error| CodecError::Malformed(error.to_string()))?;
    bytes.extend(postcard::to_stdvec(value).map_err(|e| CodecError::Malformed(e.to_string()))?);
    Ok(bytes)
}

fn unframe<T: for<'de> Deserialize<'de>>(
    bytes: &[u8],
    what: &'static str,
    max: usize,
) -> Result<T, CodecError> {
    if bytes.len() > max {
        return Err(CodecError::TooLarge {
            what,
            bytes: bytes.len(),
            max,
        });
    }
    let (format, rest): (u32, &[u8]) =
        postcard::take_from_bytes(bytes).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if format != APPENDS_FORMAT {
        return Err(CodecError::Format(format));
    }
    let (value, rest) =
        postcard::take_from_bytes(rest).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::Malformed(format!(
            "{} bytes after the end",
            rest.len()
        )));
    }
    Ok(value)
}

/// Checks a batch's bounds: 1 to [`BATCH_LEAVES_MAX`] leaves, each at most an entry's size,
/// at most [`BATCH_LEAF_BYTES_MAX`] in all, log names short.
fn check_batch(leaves: &[ForwardedLeaf]) -> Result<(), CodecError> {
    if leaves.is_empty() || leaves.len() > BATCH_LEAVES_MAX {
        return Err(CodecError::Count(leaves.len()));
    }
    let mut total = 0usize;
    for leaf in leaves {
        if leaf.leaf.len() > tlog::entry::BODY_BYTES_MAX {
            return Err(CodecError::LeafBytes(format!(
                "a leaf of {} bytes, an entry is at most {}",
                leaf.leaf.len(),
                tlog::entry::BODY_BYTES_MAX
            )));
        }
        if leaf.destination.name().0.len() > LOG_NAME_BYTES_MAX {
            return Err(CodecError::LeafBytes(format!(
                "a log name of more than {LOG_NAME_BYTES_MAX} bytes"
            )));
        }
        total += leaf.leaf.len();
    }
    if total > BATCH_LEAF_BYTES_MAX {
        return Err(CodecError::LeafBytes(format!(
            "{total} leaf bytes in one batch, at most {BATCH_LEAF_BYTES_MAX}"
        )));
    }
    Ok(())
}

/// A batch's body.
pub fn encode_batch(leaves: &[ForwardedLeaf]) -> Result<Vec<u8>, CodecError> {
    check_batch(leaves)?;
    frame(leaves)
}

/// A batch from its body, within every bound.
pub fn decode_batch(body: &[u8]) -> Result<Vec<ForwardedLeaf>, CodecError> {
    let leaves: Vec<ForwardedLeaf> = unframe(body, "a batch", BATCH_BODY_BYTES_MAX)?;
    check_batch(&leaves)?;
    Ok(leaves)
}

/// An answer's body: one [`LeafAnswer`] per leaf, in the batch's order.
pub fn encode_answers(answers: &[LeafAnswer]) -> Result<Vec<u8>, CodecError> {
    frame(answers)
}

/// The answers to a batch of `sent` leaves from their body.
pub fn decode_answers(body: &[u8], sent: usize) -> Result<Vec<LeafAnswer>, CodecError> {
    let answers: Vec<LeafAnswer> = unframe(body, "an answer", ANSWER_BYTES_MAX)?;
    if answers.len() != sent {
        return Err(CodecError::Answers {
            got: answers.len(),
            sent,
        });
    }
    Ok(answers)
}

/// Why a forwarded leaf got no [`LeafAnswer`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// No leader is known, or this node believes it leads.
    #[error("no leader is known")]
    NoLeader,
    /// Too many leaves wait for a batch on this node.
    #[error("{0} forwarded appends are already waiting")]
    Overloaded(usize),
    /// The leader has no batch endpoint (a node of an older version): relay the request.
    #[error("leader {0} has no {APPENDS_PATH}")]
    Unsupported(NodeId),
    /// The leader did not answer in time; the leaves may be committed.
    #[error("leader {0} did not answer")]
    Timeout(NodeId),
    /// The relay stopped before the leaf's batch was answered; it may be committed.
    #[error("the relay to the leader stopped")]
    Stopped,
    /// The exchange failed; the leaves may be committed.
    #[error("leader {leader}: {message}")]
    Failed {
        /// The leader.
        leader: NodeId,
        /// What failed.
        message: String,
    },
}

type Reply = oneshot::Sender<Result<LeafAnswer, ForwardError>>;

/// One node's batching relay of verified leaves to the leader. Cheap to share (`Arc`).
pub struct Forwarder {
    client: ClusterClient,
    /// Who leads now: read when a batch is sent, so a batch goes to the current leader.
    leader: Box<dyn Fn() -> Option<(NodeId, NodeAddress)> + Send + Sync>,
    metrics: Arc<Metrics>,
    queue: Mutex<Queue>,
}

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Queue {
    waiting: VecDeque<(ForwardedLeaf, Reply)>,
    /// The leaf bytes of `waiting`, kept as leaves come and go rather than summed per append.
    waiting_bytes: usize,
    in_flight: usize,
}

impl Queue {
    fn push(&mut self, leaf: ForwardedLeaf, reply: Reply) {
        self.waiting_bytes += leaf.leaf.len();
        self.waiting.push_back((leaf, reply));
    }

    /// The next batch to send, if one should go now: at once when nothing is in flight, and
    /// otherwise only a full one (up to [`IN_FLIGHT_MAX`] in flight).
    fn next_batch(&mut self) -> Option<Vec<(ForwardedLeaf, Reply)>> {
        let full =
            self.waiting.len() >= BATCH_LEAVES_MAX || self.waiting_bytes >= BATCH_LEAF_BYTES_MAX;
        if self.waiting.is_empty()
            || self.in_flight >= IN_FLIGHT_MAX
            || (self.in_flight > 0 && !full)
        {
            return None;
        }
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some((leaf, _)) = self.waiting.front() {
            let size = leaf.leaf.len();
            if batch.len() == BATCH_LEAVES_MAX
                || (!batch.is_empty() && bytes + size > BATCH_LEAF_BYTES_MAX)
            {
                break;
            }
            bytes += size;
            self.waiting_bytes -= size;
            batch.extend(self.waiting.pop_front());
        }
        self.in_flight += 1;
        Some(batch)
    }
}

impl Forwarder {
    /// A relay over `client` to whichever node `leader` names when a batch goes.
    pub fn new(
        client: ClusterClient,
        leader: impl Fn() -> Option<(NodeId, NodeAddress)> + Send + Sync + 'static,
        metrics: Arc<Metrics>,
    ) -> Arc<Forwarder> {
        Arc::new(Forwarder {
            client,
            leader: Box::new(leader),
            metrics,
            queue: Mutex::new(Queue::default()),
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        // The queue's invariants hold between statements; a panic elsewhere cannot break them.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Relays `leaf` to the leader in the next batch and waits for the leader's answer.
    pub async fn append(self: &Arc<Self>, leaf: ForwardedLeaf) -> Result<LeafAnswer, ForwardError> {
        let (reply, answer) = oneshot::channel();
        let batch = {
            let mut queue = self.queue();
            if queue.waiting.len() >= WAITING_MAX {
                return Err(ForwardError::Overloaded(queue.waiting.len()));
            }
            queue.push(leaf, reply);
            queue.next_batch()
        };
        if let Some(batch) = batch {
            // Its own task: a client that goes away must not cancel the other leaves' batch.
            tokio::spawn(Arc::clone(self).send_batches(batch));
        }
        answer.await.unwrap_or(Err(ForwardError::Stopped))
    }

    /// Sends `batch`, then each batch that is due when one returns, until none is.
    async fn send_batches(self: Arc<Self>, mut batch: Vec<(ForwardedLeaf, Reply)>) {
        loop {
            let (leaves, replies): (Vec<ForwardedLeaf>, Vec<Reply>) = batch.into_iter().unzip();
            self.metrics.forwarded_batches.inc();
            self.metrics.forwarded_leaves.inc_by(leaves.len() as u64);
            match self.send(&leaves).await {
                Ok(answers) => {
                    for (reply, answer) in replies.into_iter().zip(answers) {
                        let _ = reply.send(Ok(answer));
                    }
                }
                Err(error) => {
                    for reply in replies {
                        let _ = reply.send(Err(error.clone()));
                    }
                }
            }
            let next = {
                let mut queue = self.queue();
                queue.in_flight -= 1;
                queue.next_batch()
            };
            match next {
                Some(next) => batch = next,
                None => return,
            }
        }
    }

    /// One batch to the leader and its answers, one per leaf.
    async fn send(&self, leaves: &[ForwardedLeaf]) -> Result<Vec<LeafAnswer>, ForwardError> {
        let (leader, address) = (self.leader)().ok_or(ForwardError::NoLeader)?;
        let failed = |message: String| ForwardError::Failed { leader, message };
        let body = encode_batch(leaves).map_err(|error| failed(error.to_string()))?;
        let url = format!(
            "{}{APPENDS_PATH}",
            address.cluster_url.trim_end_matches('/')
        );
        let request = hyper::Request::post(url)
            .header(hyper::header::CONTENT_TYPE, "application/octet-stream")
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| failed(error.to_string()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|error| failed(error.to_string()))?;
            let status = response.status();
            if status == hyper::StatusCode::NOT_FOUND {
                return Err(ForwardError::Unsupported(leader));
            }
            let bytes = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
                .collect()
                .await
                .map_err(|error| failed(error.to_string()))?
                .to_bytes();
            if !status.is_success() {
                return Err(failed(format!(
                    "answered {status}: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(512)])
                )));
            }
            decode_answers(&bytes, leaves.len()).map_err(|error| failed(error.to_string()))
        };
        tokio::time::timeout(FORWARD_TIMEOUT, exchange)
            .await
            .map_err(|_| ForwardError::Timeout(leader))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(bytes: usize, log: &str) -> ForwardedLeaf {
        ForwardedLeaf {
            destination: Destination::Family(LogName(log.to_string())),
            leaf: vec![b'x'; bytes],
            integrated_time: true,
        }
    }

    #[test]
    fn a_batch_and_its_answers_round_trip() {
        let batch = vec![
            leaf(10, "artifacts"),
            ForwardedLeaf {
                destination: Destination::Exact(LogName("artifacts-2".into())),
                ..leaf(tlog::entry::BODY_BYTES_MAX, "")
            },
        ];
        assert_eq!(decode_batch(&encode_batch(&batch).unwrap()).unwrap(), batch);
        let answers = vec![
            LeafAnswer::Appended(AppendedLeaf {
                log: LogName("artifacts".into()),
                index: 7,
                duplicate: true,
                tree_size: 9,
                checkpoint: "origin\n9\nroot\n\n— sig\n".into(),
                hashes: vec![[1; 32], [2; 32]],
                root: [3; 32],
                integrated_time_ms: Some(1_700_000_000_000),
            }),
            LeafAnswer::Failed(Failure::Frozen {
                log: LogName("a".into()),
                successor: LogName("b".into()),
            }),
        ];
        let body = encode_answers(&answers).unwrap();
        assert_eq!(decode_answers(&body, 2).unwrap(), answers);
        assert_eq!(
            decode_answers(&body, 3),
            Err(CodecError::Answers { got: 2, sent: 3 })
        );
    }

    #[test]
    fn batches_past_their_bounds_are_refused() {
        // Too many leaves, none, a leaf larger than an entry, too many bytes in all, a long
        // log name: refused when encoding and when decoding.
        let many = vec![leaf(1, "artifacts"); BATCH_LEAVES_MAX + 1];
        assert_eq!(
            encode_batch(&many),
            Err(CodecError::Count(BATCH_LEAVES_MAX + 1))
        );
        assert_eq!(
            decode_batch(&frame(&many).unwrap()),
            Err(CodecError::Count(BATCH_LEAVES_MAX + 1))
        );
        assert_eq!(
            decode_batch(&frame(&[0u8; 0][..]).unwrap()),
            Err(CodecError::Count(0))
        );
        let large = vec![leaf(tlog::entry::BODY_BYTES_MAX + 1, "artifacts")];
        assert!(matches!(
            decode_batch(&frame(&large).unwrap()),
            Err(CodecError::LeafBytes(_))
        ));
        let heavy = vec![leaf(tlog::entry::BODY_BYTES_MAX, "a"); BATCH_LEAVES_MAX];
        assert!(matches!(
            encode_batch(&heavy),
            Err(CodecError::LeafBytes(_))
        ));
        let named = vec![leaf(1, &"n".repeat(LOG_NAME_BYTES_MAX + 1))];
        assert!(matches!(
            encode_batch(&named),
            Err(CodecError::LeafBytes(_))
        ));
        // A body past the byte bound is refused before it is decoded.
        let body = vec![0u8; BATCH_BODY_BYTES_MAX + 1];
        assert!(matches!(
            decode_batch(&body),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn another_format_or_trailing_bytes_are_refused() {
        let batch = vec![leaf(3, "artifacts")];
        let mut body = encode_batch(&batch).unwrap();
        body[0] = 2;
        assert_eq!(decode_batch(&body), Err(CodecError::Format(2)));
        let mut body = encode_batch(&batch).unwrap();
        body.push(0);
        assert!(matches!(decode_batch(&body), Err(CodecError::Malformed(_))));
        assert!(matches!(
            decode_batch(&[1, 0xff]),
            Err(CodecError::Malformed(_))
        ));
    }

    /// A batch goes at once when nothing is in flight; while one is, leaves wait until the
    /// in-flight batch returns or a full batch waits; never more than IN_FLIGHT_MAX go.
    #[test]
    fn batches_go_without_a_timer() {
        let mut queue = Queue::default();
        let push = |queue: &mut Queue, n: usize| {
            for _ in 0..n {
                queue.push(leaf(1, "a"), oneshot::channel().0);
            }
        };
        push(&mut queue, 1);
        assert_eq!(queue.next_batch().map(|b| b.len()), Some(1));
        push(&mut queue, 5);
        assert!(queue.next_batch().is_none(), "waits for the one in flight");
        push(&mut queue, BATCH_LEAVES_MAX);
        assert_eq!(queue.next_batch().map(|b| b.len()), Some(BATCH_LEAVES_MAX));
        assert_eq!(queue.waiting.len(), 5);
        queue.in_flight -= 2;
        assert_eq!(queue.next_batch().map(|b| b.len()), Some(5));
        push(&mut queue, IN_FLIGHT_MAX * BATCH_LEAVES_MAX);
        while queue.next_batch().is_some() {}
        assert_eq!(queue.in_flight, IN_FLIGHT_MAX);
        // Bytes bound a batch too.
        let mut queue = Queue::default();
        for _ in 0..3 {
            queue.push(leaf(BATCH_LEAF_BYTES_MAX / 2, "a"), oneshot::channel().0);
        }
        assert_eq!(queue.next_batch().map(|b| b.len()), Some(2));
        assert_eq!(queue.waiting_bytes, BATCH_LEAF_BYTES_MAX / 2);
    }
}
