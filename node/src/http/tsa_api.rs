//! The timestamp authority's routes, those of Sigstore's timestamp-authority:
//! `POST /api/v1/timestamp` (a DER `TimeStampReq`, `application/timestamp-query`, or its JSON
//! form, `application/json`, in; a DER `TimeStampResp`, `application/timestamp-reply`, out,
//! status 201 as there) and
//! `GET /api/v1/timestamp/certchain` (the PEM chain, signing certificate first).
//!
//! Any node answers: a timestamp is not logged, so nothing goes through Raft. `genTime` is
//! the node's clock and the serial a 127-bit random number from its randomness seam, so
//! serials are unique across nodes without coordination. The signing key is the one in use at
//! `genTime` (`[ca.tsa.next]` takes over at its `from`; `keyless::Rotating`). The request is
//! parsed and the token signed on [`crate::env::Checks`], bounded like signature checks.
//! Malformed requests get a 400 naming the field, as JSON like every other error; the TSA
//! never signs a rejection (`TimeStampResp` with status rejection), so only granted
//! responses ever carry its signature.

use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::{Method, Request, Response, StatusCode};

use super::{ApiError, Body, read_body, response};
use crate::node::Node;

/// `POST` a timestamp request here.
pub(super) const TIMESTAMP: &str = "/api/v1/timestamp";
/// `GET` the certificate chain here.
pub(super) const CERT_CHAIN: &str = "/api/v1/timestamp/certchain";
/// The paths served here.
pub(super) const ROUTES: [&str; 2] = [TIMESTAMP, CERT_CHAIN];

/// The request media type (RFC 3161 §3.4).
const QUERY_MEDIA_TYPE: &str = "application/timestamp-query";
/// The response media type (RFC 3161 §3.4).
const REPLY_MEDIA_TYPE: &str = "application/timestamp-reply";

pub(super) async fn handle(node: &Arc<Node>, request: Request<Incoming>) -> Response<Body> {
    let Some(tsa) = node.tsa().cloned() else {
        return ApiError::not_found("this node runs no timestamp authority").into_response();
    };
    let method = request.method().clone();
    let path = request.uri().path().trim_end_matches('/').to_string();
    match (method, path.as_str()) {
        (Method::GET, CERT_CHAIN) => response(
            StatusCode::OK,
            "application/pem-certificate-chain",
            Bytes::from(tsa.at(node.clock().now_unix_ms()).chain_pem().to_owned()),
        ),
        (Method::POST, TIMESTAMP) => match timestamp(node, tsa, request).await {
            Ok(reply) => response(StatusCode::CREATED, REPLY_MEDIA_TYPE, Bytes::from(reply)),
            Err(error) => error.into_response(),
        },
        (_, CERT_CHAIN) => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the certificate chain is read with GET",
        )
        .into_response(),
        _ => ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "timestamps are requested with POST",
        )
        .into_response(),
    }
}

async fn timestamp(
    node: &Arc<Node>,
    tsa: Arc<crate::keyless::Rotating<ca::tsa::TimestampAuthority>>,
    request: Request<Incoming>,
) -> Result<Vec<u8>, ApiError> {
    let media_type = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    let json = match media_type.as_deref() {
        Some(QUERY_MEDIA_TYPE) => false,
        Some("application/json") => true,
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "send a DER TimeStampReq as {QUERY_MEDIA_TYPE}, or Sigstore's JSON form as \
                     application/json (got {})",
                    other.unwrap_or("no content type")
                ),
            ));
        }
    };
    let body = read_body(request, ca::tsa::REQUEST_BYTES_MAX).await?;
    let gen_time_ms = node.clock().now_unix_ms();
    let mut serial = [0u8; 16];
    rand08::RngCore::fill_bytes(&mut crate::runtime::SeededRng, &mut serial);
    let signed = node
        .checks()
        .run(move || {
            let request = if json {
                ca::tsa::Request::from_json(&body)?
            } else {
                ca::tsa::Request::parse(&body)?
            };
            // The key in use at genTime, so genTime lies in its window in the trusted root.
            tsa.at(gen_time_ms).respond(&request, gen_time_ms, &serial)
        })
        .await?;
    signed.map_err(|error| match error {
        ca::tsa::TsaError::Internal(_) | ca::tsa::TsaError::Time(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "timestamp_failed",
            error.to_string(),
        ),
        _ => ApiError::bad_request("invalid_timestamp_request", error.to_string()),
    })
}
