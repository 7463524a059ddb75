//! The append, as the v2 and Rekor v1 handlers share it: on the leader, sequence and answer the
//! verified leaf here; on a follower, relay the verified leaf to the leader in a batch
//! (`network::forward`) and get back what this node needs to answer the client itself, with
//! the same code as for a local append. The leader's end of that relay is
//! [`forwarded_appends`], on the cluster listener only: a member sent the leaves, so they are
//! sequenced without being checked again.
//!
//! Every error an append can end with is a [`Failure`] first, wherever it happened, so that a
//! client of a follower gets the very error the leader would have given it.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Request, Response, StatusCode};

use super::log_api::storage_error;
use super::{ApiError, Body, binary_answer, read_body};
use crate::network::forward::{
    AppendedLeaf, BATCH_BODY_BYTES_MAX, ForwardError, ForwardedLeaf, LeafAnswer, decode_batch,
    encode_answers,
};
pub(super) use crate::network::forward::{Destination as Target, Failure};
use crate::node::{FORWARD_TIMEOUT, Node};
use crate::sequencer::{SequenceError, Sequenced};
use crate::service;
use crate::types::LogName;

/// The largest answer a relayed raw request may have (the CA's certificate chain, an entry).
const RELAYED_ANSWER_BYTES_MAX: usize = tlog::entry::DSSE_ENVELOPE_BYTES_MAX;

/// An answered append, wherever it was sequenced.
#[derive(Debug)]
pub(super) struct Answered {
    /// The log the entry is in (for a family, the one open when it was sequenced).
    pub(super) log: LogName,
    /// The entry, its checkpoint and the proof between them.
    pub(super) appended: service::Appended,
    /// The entry's integrated time, when asked for (Rekor v1) and known.
    pub(super) integrated_time_ms: Option<u64>,
}

/// The request as the client sent it, for a leader that has no batch endpoint (an older
/// version during an upgrade): relayed whole, as before batches.
#[derive(Debug)]
pub(super) struct Raw<'a> {
    /// The path on the leader.
    pub(super) path: &'a str,
    /// The body.
    pub(super) body: Bytes,
}

/// Appends the verified, canonical `leaf` to `target`: here if this node leads, else through
/// the leader (batched), or, for a leader without the batch endpoint, by relaying `raw` and
/// returning the leader's response as the inner `Err`. A request `forwarded` here by a member
/// is never forwarded again: two nodes that each believe the other leads would otherwise
/// bounce it between them until a timeout.
pub(super) async fn append(
    node: &Arc<Node>,
    target: &Target,
    leaf: Vec<u8>,
    integrated_time: bool,
    raw: Raw<'_>,
    forwarded: bool,
) -> Result<Result<Answered, Response<Body>>, ApiError> {
    // A follower that knows the leader relays at once rather than pooling the leaf for a
    // proposal Raft would refuse.
    let leads_elsewhere = !forwarded
        && node.forwarder().is_some()
        && node
            .leader_address()
            .is_some_and(|(leader, _)| leader != node.id());
    if !leads_elsewhere {
        match append_here(node, target, &leaf, integrated_time).await {
            Ok(answered) => return Ok(Ok(answered)),
            Err(Failure::NoLeader) if !forwarded => {}
            Err(failure) => return Err(failure_error(failure)),
        }
    }
    let Some(forwarder) = node.forwarder() else {
        // No relay (the environment has none): say where the leader is.
        return forward(node, raw.path, raw.body, None).await.map(Err);
    };
    let relayed = ForwardedLeaf {
        destination: target.clone(),
        leaf,
        integrated_time,
    };
    match forwarder.append(relayed.clone()).await {
        Ok(LeafAnswer::Appended(appended)) => answered(appended, &relayed.leaf).map(Ok),
        Ok(LeafAnswer::Failed(failure)) => Err(failure_error(failure)),
        Err(ForwardError::Unsupported(_)) => forward(node, raw.path, raw.body, None).await.map(Err),
        Err(error) => Err(forward_error(&error)),
    }
}

/// `POST /internal/appends` (cluster listener only): a member's batch of verified, canonical
/// leaves, each sequenced and answered here (concurrently, so they share the sequencer's
/// batches), never forwarded again: on a node that does not lead, each is answered
/// [`Failure::NoLeader`].
pub(super) async fn forwarded_appends(
    node: &Arc<Node>,
    request: Request<Incoming>,
) -> Response<Body> {
    let body = match read_body(request, BATCH_BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let leaves = match decode_batch(&body) {
        Ok(leaves) => leaves,
        Err(error) => {
            return ApiError::bad_request("bad_forwarded_appends", error.to_string())
                .into_response();
        }
    };
    let answers = futures_util::future::join_all(leaves.into_iter().map(|leaf| async move {
        match append_here(node, &leaf.destination, &leaf.leaf, leaf.integrated_time).await {
            Ok(answered) => LeafAnswer::Appended(to_wire(answered)),
            Err(failure) => LeafAnswer::Failed(failure),
        }
    }))
    .await;
    binary_answer(encode_answers(&answers), "the batch's answers")
}

/// Sequences and answers `leaf` on this node, which must lead; never forwards.
async fn append_here(
    node: &Arc<Node>,
    target: &Target,
    leaf: &[u8],
    integrated_time: bool,
) -> Result<Answered, Failure> {
    let (log, sequenced) = commit_here(node, target, leaf.to_vec()).await?;
    let appended = service::answer(node, &log, leaf, sequenced)
        .await
        .map_err(answer_failure)?;
    let integrated_time_ms = if integrated_time {
        // Applied here before the sequencer answered (the leader applies what it commits).
        let (reader, name, index) = (node.reader().clone(), log.clone(), appended.index);
        node.blocking()
            .run(move || {
                reader
                    .view()
                    .and_then(|view| view.integrated_time_ms(&name, index))
            })
            .await
            .map_err(|error| Failure::Storage(error.to_string()))?
    } else {
        None
    };
    Ok(Answered {
        log,
        appended,
        integrated_time_ms,
    })
}

async fn commit_here(
    node: &Node,
    target: &Target,
    leaf: Vec<u8>,
) -> Result<(LogName, Sequenced), Failure> {
    let committed = match target {
        Target::Family(family) => service::commit_to_active(node, family, leaf).await,
        Target::Exact(log) => {
            if node.logs().get(log).is_none() {
                return Err(Failure::UnknownLog(log.clone()));
            }
            if let Some(failure) = closed_log(node, log) {
                return Err(failure);
            }
            service::commit(node, log, leaf)
                .await
                .map(|sequenced| (log.clone(), sequenced))
        }
    };
    committed.map_err(|error| match error {
        SequenceError::Frozen { log, successor } => Failure::Frozen { log, successor },
        SequenceError::NotLeader(_) => Failure::NoLeader,
        SequenceError::Overloaded(waiting) => Failure::Overloaded(waiting as u64),
        SequenceError::Refused(reason) => Failure::Refused(reason),
        error @ (SequenceError::Unknown(_) | SequenceError::Stopped) => {
            Failure::OutcomeUnknown(error.to_string())
        }
    })
}

/// Why an append to a log that takes no appends (`crate::lifecycle`) fails.
fn closed_log(node: &Node, log: &LogName) -> Option<Failure> {
    let lifecycle = node.lifecycle();
    match lifecycle.state(node.logs(), log) {
        crate::lifecycle::LogState::Open => None,
        crate::lifecycle::LogState::Frozen(record) => Some(Failure::Frozen {
            log: log.clone(),
            successor: record.successor.clone(),
        }),
        crate::lifecycle::LogState::Waiting(predecessor) => Some(Failure::NotOpen {
            log: log.clone(),
            predecessor: predecessor.clone(),
        }),
    }
}

fn answer_failure(error: service::AnswerError) -> Failure {
    match error {
        error @ service::AnswerError::NotWitnessed { .. } => {
            Failure::NotWitnessed(error.to_string())
        }
        error @ service::AnswerError::Proof { .. } => Failure::Storage(error.to_string()),
        error => Failure::ProofMismatch(error.to_string()),
    }
}

/// What a client is told for `failure`, on the leader or on a follower alike.
pub(super) fn failure_error(failure: Failure) -> ApiError {
    match failure {
        Failure::NoLeader => ApiError::unavailable(
            "no_leader",
            "forwarded here as to the leader, but this node does not lead; retry shortly",
        ),
        Failure::Frozen { log, successor } => ApiError::new(
            StatusCode::CONFLICT,
            "log_frozen",
            format!(
                "log {log} is frozen: it takes no more appends (its final checkpoint is at \
                 /logs/{log}/checkpoint); append to its successor, log {successor}"
            ),
        ),
        Failure::NotOpen { log, predecessor } => ApiError::new(
            StatusCode::CONFLICT,
            "log_not_open",
            format!("log {log} is not open yet: it opens when log {predecessor} is rotated"),
        ),
        Failure::UnknownLog(log) => ApiError::not_found(format!("no log named {:?}", log.0)),
        Failure::Overloaded(waiting) => overloaded(usize::try_from(waiting).unwrap_or(usize::MAX)),
        Failure::Refused(reason) => ApiError::bad_request("refused", reason),
        // The entry may still be committed: a retry is safe, dedup answers with it.
        Failure::OutcomeUnknown(message) => {
            ApiError::unavailable("outcome_unknown", format!("{message}; retrying is safe"))
        }
        Failure::NotWitnessed(message) => ApiError::unavailable("not_witnessed", message),
        Failure::Storage(message) => storage_error(message),
        Failure::ProofMismatch(message) => {
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "proof_failed", message)
        }
    }
}

/// What a client is told when its leaf got no answer from the leader; the leaf may be
/// committed, so a retry is safe (dedup answers with it).
fn forward_error(error: &ForwardError) -> ApiError {
    match error {
        ForwardError::NoLeader => {
            ApiError::unavailable("no_leader", "no leader is known; retry shortly")
        }
        ForwardError::Overloaded(waiting) => overloaded(*waiting),
        ForwardError::Timeout(_) => ApiError::unavailable("forward_timeout", error.to_string()),
        error => ApiError::unavailable("forward_failed", error.to_string()),
    }
}

/// The answer to a submission that was too many: the pool is full, retry shortly.
pub(super) fn overloaded(waiting: usize) -> ApiError {
    ApiError {
        retry_after_seconds: Some(1),
        ..ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "overloaded",
            format!("{waiting} submissions are already waiting; retry shortly"),
        )
    }
}

fn to_wire(answered: Answered) -> AppendedLeaf {
    let appended = answered.appended;
    AppendedLeaf {
        log: answered.log,
        index: appended.index,
        duplicate: appended.duplicate,
        tree_size: appended.tree_size,
        checkpoint: appended.checkpoint.to_string(),
        hashes: appended
            .inclusion_proof
            .hashes
            .iter()
            .map(|hash| hash.0)
            .collect(),
        root: appended.root.0,
        integrated_time_ms: answered.integrated_time_ms,
    }
}

/// The leader's answer for `leaf` as this node's own, once its proof is checked to lead from
/// `leaf` to the checkpoint's root (as the leader did): a follower never hands on a proof it
/// has not seen hold.
fn answered(wire: AppendedLeaf, leaf: &[u8]) -> Result<Answered, ApiError> {
    let inclusion_proof = tlog::InclusionProof {
        leaf_index: tlog::LeafIndex(wire.index),
        tree_size: tlog::TreeSize(wire.tree_size),
        hashes: wire.hashes.into_iter().map(tlog::Hash).collect(),
    };
    let root = service::checked_root(&inclusion_proof, leaf, &wire.checkpoint, wire.tree_size)
        .map_err(|message| failure_error(Failure::ProofMismatch(message)))?;
    if root.0 != wire.root {
        return Err(failure_error(Failure::ProofMismatch(
            "the leader's root is not its checkpoint's".into(),
        )));
    }
    Ok(Answered {
        log: wire.log,
        appended: service::Appended {
            index: wire.index,
            duplicate: wire.duplicate,
            tree_size: wire.tree_size,
            checkpoint: Arc::from(wire.checkpoint),
            inclusion_proof,
            root,
        },
        integrated_time_ms: wire.integrated_time_ms,
    })
}

/// Sends a request to the leader's cluster listener as it came (mutual TLS, so the leader knows
/// a member sent it: it neither charges the sender's address nor forwards it again) and relays
/// its answer (with the caller's `Authorization` header, if given: the CA's token).
pub(super) async fn forward(
    node: &Arc<Node>,
    path: &str,
    body: Bytes,
    authorization: Option<&HeaderValue>,
) -> Result<Response<Body>, ApiError> {
    let Some((leader, address)) = node
        .leader_address()
        .filter(|(leader, _)| *leader != node.id())
    else {
        return Err(ApiError::unavailable(
            "no_leader",
            "no leader is known; retry shortly",
        ));
    };
    let url = address.cluster_url.trim_end_matches('/');
    let mut request = Request::post(format!("{url}{path}"))
        .header(hyper::header::CONTENT_TYPE, "application/json");
    if let Some(authorization) = authorization {
        request = request.header(hyper::header::AUTHORIZATION, authorization.clone());
    }
    let request = request
        .body(Full::new(body))
        .map_err(|error| ApiError::unavailable("forward_failed", error.to_string()))?;
    let Some(client) = node.forward_client() else {
        return Err(ApiError::unavailable(
            "no_leader",
            format!(
                "this node does not lead and relays no writes; send it to {}",
                address.api_url
            ),
        ));
    };
    let answer = tokio::time::timeout(FORWARD_TIMEOUT, client.request(request))
        .await
        .map_err(|_| {
            ApiError::unavailable("forward_timeout", format!("leader {leader} did not answer"))
        })?
        .map_err(|error| {
            ApiError::unavailable("forward_failed", format!("leader {leader}: {error}"))
        })?;
    let status = answer.status();
    let headers = answer.headers().clone();
    let bytes = Limited::new(answer.into_body(), RELAYED_ANSWER_BYTES_MAX)
        .collect()
        .await
        .map_err(|error| ApiError::unavailable("forward_failed", error.to_string()))?
        .to_bytes();
    let mut reply = Response::new(Full::new(bytes));
    *reply.status_mut() = status;
    for name in [hyper::header::CONTENT_TYPE, hyper::header::RETRY_AFTER] {
        if let Some(value) = headers.get(&name) {
            reply.headers_mut().insert(name, value.clone());
        }
    }
    Ok(reply)
}
