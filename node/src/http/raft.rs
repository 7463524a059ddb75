//! The cluster-internal Raft endpoints: the receiving half of `network`. Served only on the
//! cluster listener, so a request reaches them only over mutual TLS with a cluster certificate.
//!
//! Each takes a postcard-encoded openraft request and answers with the postcard-encoded
//! `Result` of handing it to the local Raft, so the sender sees the peer's own error.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{ApiError, Body, read_body, response};
use crate::network::{RAFT_BODY_BYTES_MAX, RAFT_PATH};
use crate::node::Node;

pub(super) async fn handle(
    node: &Arc<Node>,
    path: &str,
    request: Request<Incoming>,
) -> Response<Body> {
    let body = match read_body(request, RAFT_BODY_BYTES_MAX).await {
        Ok(body) => body,
        Err(error) => return error.into_response(),
    };
    match path.strip_prefix(RAFT_PATH) {
        Some("/append") => match decode(&body) {
            Ok(rpc) => encode(&node.raft.append_entries(rpc).await),
            Err(error) => error.into_response(),
        },
        Some("/vote") => match decode(&body) {
            Ok(rpc) => encode(&node.raft.vote(rpc).await),
            Err(error) => error.into_response(),
        },
        Some("/snapshot") => match decode(&body) {
            Ok(rpc) => encode(&node.raft.install_snapshot(rpc).await),
            Err(error) => error.into_response(),
        },
        _ => ApiError::not_found(format!("no Raft endpoint {path}")).into_response(),
    }
}

fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    postcard::from_bytes(body)
        .map_err(|error| ApiError::bad_request("bad_raft_message", format!("decoding: {error}")))
}

fn encode<T: Serialize>(answer: &T) -> Response<Body> {
    match postcard::to_stdvec(answer) {
        Ok(bytes) => response(
            StatusCode::OK,
            "application/octet-stream",
            Bytes::from(bytes),
        ),
        Err(error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding_failed",
            format!("encoding Raft answer: {error}"),
        )
        .into_response(),
    }
}
