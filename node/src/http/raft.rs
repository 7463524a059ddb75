//! The cluster-internal endpoints: the receiving half of `network`. Served only on the
//! cluster listener, so a request reaches them only over mutual TLS with a cluster certificate.
//!
//! Each Raft endpoint takes a postcard-encoded openraft request and answers with the
//! postcard-encoded `Result` of handing it to the local Raft, so the sender sees the peer's own
//! error. The batch-times endpoint answers snapshot catch-up on another member with the
//! integrated times of a range of leaves (`network::BATCH_TIMES_PATH`).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ApiError, Body, binary_answer, read_body};
use crate::catch_up::BATCH_TIMES_ROWS_MAX;
use crate::network::{RAFT_BODY_BYTES_MAX, RAFT_FORMAT_HEADER, RAFT_PATH};
use crate::node::Node;
use crate::types::{LogName, RAFT_FORMAT};

pub(super) async fn handle(
    node: &Arc<Node>,
    path: &str,
    request: Request<Incoming>,
) -> Response<Body> {
    if let Err(error) = check_format(&request) {
        tracing::error!(error = ?error, "refused a Raft message");
        return error.into_response();
    }
    let body = match read_body(request, RAFT_BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    match path.strip_prefix(RAFT_PATH) {
        Some("/append") => match decode(&body) {
            Ok(rpc) => encode(&node.raft().append_entries(rpc).await),
            Err(error) => error.into_response(),
        },
        Some("/vote") => match decode(&body) {
            Ok(rpc) => encode(&node.raft().vote(rpc).await),
            Err(error) => error.into_response(),
        },
        Some("/snapshot") => match decode(&body) {
            Ok(rpc) => encode(&node.raft().install_snapshot(rpc).await),
            Err(error) => error.into_response(),
        },
        _ => ApiError::not_found(format!("no Raft endpoint {path}")).into_response(),
    }
}

/// `POST /internal/catch-up/batch-times`: this node's batch times for a range of leaves.
pub(super) async fn batch_times(node: &Arc<Node>, request: Request<Incoming>) -> Response<Body> {
    // A log name, two numbers and postcard's framing.
    const REQUEST_BYTES_MAX: usize = 1024;
    let body = match read_body(request, REQUEST_BYTES_MAX).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    let (log, first, end): (String, u64, u64) = match decode(&body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    if first >= end || end - first > BATCH_TIMES_ROWS_MAX {
        return ApiError::bad_request(
            "bad_range",
            format!("want first < end <= first + {BATCH_TIMES_ROWS_MAX}, got {first} and {end}"),
        )
        .into_response();
    }
    let reader = node.reader().clone();
    let answer = node
        .blocking()
        .run(move || {
            reader
                .view()
                .and_then(|view| view.batch_times(&LogName(log), first, end))
        })
        .await;
    match answer {
        Ok(rows) => encode(&rows),
        Err(error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            error.to_string(),
        )
        .into_response(),
    }
}

/// Refuses a Raft message in a newer format than this node reads: decoding it could misread
/// an entry this version does not know.
fn check_format(request: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(value) = request.headers().get(RAFT_FORMAT_HEADER) else {
        return Ok(());
    };
    let format: u32 = value
        .to_str()
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_raft_message",
                format!("{RAFT_FORMAT_HEADER}: {value:?}"),
            )
        })?;
    if format > RAFT_FORMAT {
        return Err(ApiError::bad_request(
            "newer_raft_format",
            format!(
                "a Raft message in format {format}, from a newer cairn-node; this node reads \
                 formats up to {RAFT_FORMAT}: upgrade it"
            ),
        ));
    }
    Ok(())
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    postcard::from_bytes(body)
        .map_err(|error| ApiError::bad_request("bad_raft_message", format!("decoding: {error}")))
}

fn encode<T: Serialize>(answer: &T) -> Response<Body> {
    binary_answer(postcard::to_stdvec(answer), "Raft answer")
}
