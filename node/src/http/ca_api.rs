//! The keyless CA's routes, Fulcio v2 compatible: `POST /api/v2/signingCert`,
//! `GET /api/v2/trustBundle`, `GET /api/v2/configuration`, and `GET /api/v2/ctLog` (the SCT
//! key, which clients need in their trust root's `ctlogs`).
//!
//! Logged before returned. The leader (a follower forwards the request untouched, to the
//! leader's cluster listener) verifies the token, checks the rate limit per identity and the
//! proof of possession, and chooses every issuance field (random serial, time) before anything
//! is proposed, so the Raft entries carry finished bytes and apply stays deterministic. Then:
//! 1. the precertificate's `MerkleTreeLeaf` is appended to the certificate log and committed;
//! 2. the SCT is signed over it, naming its leaf index;
//! 3. the final certificate, with that SCT, is appended and committed;
//! 4. only then is the chain returned.
//!
//! If either append is not known to be committed, the caller gets a 503 and no certificate: the
//! only certificates that ever leave the node are in the log. A precertificate committed without
//! its certificate (leader lost between the steps) is harmless: it certifies nothing by itself.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;

use super::append::{forward, overloaded};
use super::{ApiError, Body, json, read_body};
use crate::keyless::{IssueError, KeylessCa};
use crate::metrics::OutcomeLabel;
use crate::node::Node;
use crate::sequencer::SequenceError;
use crate::service;

/// The paths served here.
pub(super) const ROUTES: [&str; 4] = [
    SIGNING_CERT,
    "/api/v2/trustBundle",
    "/api/v2/configuration",
    "/api/v2/ctLog",
];
pub(super) const SIGNING_CERT: &str = "/api/v2/signingCert";
/// Largest request body: a token, a CSR or key, and JSON around them.
const REQUEST_BYTES_MAX: usize = 64 * 1024;
/// The strict JSON reader's bounds for a `signingCert` body.
const JSON_LIMITS: crate::api::json::Limits = crate::api::json::Limits {
    bytes: REQUEST_BYTES_MAX,
    depth: 8,
    members: 64,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SigningCertRequest {
    #[serde(default)]
    credentials: Option<Credentials>,
    #[serde(default)]
    certificate_signing_request: Option<String>,
    #[serde(default)]
    public_key_request: Option<PublicKeyRequest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    #[serde(default)]
    oidc_identity_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyRequest {
    public_key: PublicKey,
    proof_of_possession: String,
}

#[derive(Deserialize)]
struct PublicKey {
    content: String,
}

pub(super) async fn handle(node: &Arc<Node>, request: Request<Incoming>) -> Response<Body> {
    let Some(ca) = node.ca().cloned() else {
        return ApiError::not_found("this node runs no CA").into_response();
    };
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let result = match (method, path.as_str()) {
        (Method::POST, SIGNING_CERT) => {
            let result = signing_cert(node, &ca, request).await;
            // A request relayed to the leader is counted there by its outcome, and here only
            // as relayed, so that summing over the nodes counts each outcome once.
            let outcome = match &result {
                Ok(response) if response.extensions().get::<Relayed>().is_some() => "relayed",
                Ok(_) => "issued",
                Err(error) => error.code,
            };
            node.metrics()
                .certificate_requests
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.to_owned(),
                })
                .inc();
            result
        }
        (Method::GET, "/api/v2/trustBundle") => Ok(trust_bundle(&ca)),
        (Method::GET, "/api/v2/configuration") => Ok(configuration(&ca)),
        (Method::GET, "/api/v2/ctLog") => Ok(ct_log(node, &ca)),
        (method, path) => Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} {path}"),
        )),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// Every chain the CA issues or issued under, the current one first, then the next one, once
/// configured, and the retired ones, newest first (Fulcio lists every chain it has).
fn trust_bundle(ca: &KeylessCa) -> Response<Body> {
    let retired = ca.material.retired.iter().rev().map(|retired| {
        retired
            .chain_der
            .iter()
            .map(|der| ca::cert::to_pem(der))
            .collect::<Vec<_>>()
    });
    let chains: Vec<_> = ca
        .material
        .all()
        .into_iter()
        .map(|(material, _, _)| material.authority.chain_pem().map(str::to_owned).to_vec())
        .chain(retired)
        .map(|chain| serde_json::json!({ "certificates": chain }))
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "chains": chains }))
}

fn configuration(ca: &KeylessCa) -> Response<Body> {
    let issuers: Vec<serde_json::Value> = ca
        .verifier
        .issuers()
        .iter()
        .map(|issuer| {
            let challenge = match issuer.kind {
                ca::identity::IdentityKind::Email => "email",
                _ => "sub",
            };
            serde_json::json!({
                "issuerUrl": issuer.url,
                "audience": issuer.client_id,
                "challengeClaim": challenge,
            })
        })
        .collect();
    json(StatusCode::OK, &serde_json::json!({ "issuers": issuers }))
}

/// The certificate log and the SCT key in use now.
fn ct_log(node: &Node, ca: &KeylessCa) -> Response<Body> {
    let log = node.active_log(&ca.log);
    let ct_key = &ca.material.at(node.clock().now_unix_ms()).ct_key;
    let origin = node.logs().get(&log).map(|log| log.origin.clone());
    json(
        StatusCode::OK,
        &serde_json::json!({
            "log": log.0,
            "origin": origin,
            "logId": BASE64.encode(ct_key.log_id()),
            "publicKey": BASE64.encode(ct_key.spki_der()),
            "keyDetails": "PKIX_ECDSA_P256_SHA_256",
        }),
    )
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad_request(code, message)
}

fn token_error(error: &ca::TokenError) -> ApiError {
    let status = StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let mut api = ApiError::new(status, error.code(), error.to_string());
    if status == StatusCode::SERVICE_UNAVAILABLE {
        api.retry_after_seconds = Some(5);
    }
    api
}

fn key_error(error: &ca::pop::KeyError) -> ApiError {
    bad("invalid_key", error.to_string())
}

async fn signing_cert(
    node: &Arc<Node>,
    ca: &KeylessCa,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    let authorization = request.headers().get(hyper::header::AUTHORIZATION).cloned();
    let forwarded = super::Forwarded::is(&request);
    let body = read_body(request, REQUEST_BYTES_MAX).await?;
    let parsed: SigningCertRequest = super::strict_json_as(&body, &JSON_LIMITS)?;
    let token = match (
        parsed
            .credentials
            .as_ref()
            .and_then(|credentials| credentials.oidc_identity_token.as_deref()),
        &authorization,
    ) {
        (Some(token), _) => token.to_string(),
        (None, Some(header)) => header
            .to_str()
            .ok()
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "missing_token",
                    "Authorization must be 'Bearer <token>'",
                )
            })?
            .to_string(),
        (None, None) => {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "missing_token",
                "give the identity token as 'Authorization: Bearer' or credentials.oidcIdentityToken",
            ));
        }
    };
    if parsed.certificate_signing_request.is_some() == parsed.public_key_request.is_some() {
        return Err(bad(
            "invalid_request",
            "give exactly one of certificateSigningRequest and publicKeyRequest",
        ));
    }
    // Only the leader issues: it alone can append, and one place chooses serials and times.
    if let Some((leader, _)) = node.leader_url()
        && leader != node.id()
    {
        return forward_to_leader(node, body, authorization.as_ref(), forwarded).await;
    }

    let now_ms = node.clock().now_unix_ms();
    let identity = ca
        .verifier
        .verify(&token, now_ms / 1000)
        .await
        .map_err(|error| token_error(&error))?;
    if let Err(wait) = ca.limiter.check(identity.san.value(), now_ms / 1000) {
        return Err(ApiError {
            retry_after_seconds: Some(u32::try_from(wait).unwrap_or(60)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!(
                    "too many certificates for {}; retry in {wait} s",
                    identity.san.value()
                ),
            )
        });
    }
    // The proof of possession is a signature check on client input, bounded like every other
    // (`env::Checks`).
    let challenge = identity.challenge.clone();
    let (csr, key_request) = (
        parsed.certificate_signing_request,
        parsed.public_key_request,
    );
    let spki_der = node
        .checks()
        .run(move || proven_key(csr.as_deref(), key_request.as_ref(), &challenge))
        .await??;

    let (issuance, issued) =
        match service::issue_certificate(node, identity, spki_der, now_ms).await {
            Ok(issued) => issued,
            // Leadership moved before anything was appended: the new leader issues.
            Err(IssueError::NotLeader) => {
                return forward_to_leader(node, body, authorization.as_ref(), forwarded).await;
            }
            Err(IssueError::NotLogged {
                error: SequenceError::Overloaded(waiting),
                ..
            }) => return Err(overloaded(waiting)),
            Err(error @ IssueError::NotLogged { .. }) => {
                return Err(ApiError::unavailable("not_logged", error.to_string()));
            }
            Err(error @ IssueError::NoCa) => return Err(ApiError::not_found(error.to_string())),
            Err(IssueError::Internal(error)) => {
                return Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "issuance_failed",
                    error.to_string(),
                ));
            }
        };
    let certificate = issued.certificate;
    tracing::info!(
        san = issuance.identity.san.value(),
        issuer = %issuance.identity.issuer,
        precertificate_index = issued.precertificate.index,
        certificate_index = issued.logged.index,
        "certificate issued"
    );
    // The chain of the intermediate that signed it: the one in use at its notBefore.
    let [intermediate, root] = ca.material.at(issuance.timestamp_ms).authority.chain_pem();
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({
            "signedCertificateEmbeddedSct": {
                "chain": {
                    "certificates": [ca::cert::to_pem(&certificate), intermediate, root],
                },
            },
        }),
    ))
}

/// The key the request proves possession of: a CSR's (self-signed), or a public key with its
/// signature over the challenge.
fn proven_key(
    csr: Option<&str>,
    key_request: Option<&PublicKeyRequest>,
    challenge: &str,
) -> Result<Vec<u8>, ApiError> {
    match (csr, key_request) {
        (Some(csr), _) => {
            // sigstore-python sends base64 of the PEM; accept the PEM itself too.
            let bytes = if csr.trim_start().starts_with("-----BEGIN") {
                csr.as_bytes().to_vec()
            } else {
                BASE64.decode(csr.trim()).map_err(|_| {
                    bad(
                        "invalid_key",
                        "certificateSigningRequest: not base64 or PEM",
                    )
                })?
            };
            ca::pop::key_from_csr(&bytes).map_err(|error| key_error(&error))
        }
        (None, Some(key)) => {
            let proof = BASE64.decode(key.proof_of_possession.trim()).map_err(|_| {
                bad(
                    "invalid_key",
                    "publicKeyRequest.proofOfPossession: not base64",
                )
            })?;
            ca::pop::key_from_proof(key.public_key.content.as_bytes(), &proof, challenge)
                .map_err(|error| key_error(&error))
        }
        (None, None) => Err(bad("invalid_request", "no key")),
    }
}

async fn forward_to_leader(
    node: &Arc<Node>,
    body: bytes::Bytes,
    authorization: Option<&HeaderValue>,
    forwarded: bool,
) -> Result<Response<Body>, ApiError> {
    if forwarded {
        // Forwarded to us as the leader, and we are not: never bounce it on.
        return Err(ApiError::unavailable(
            "no_leader",
            "leadership is changing; retry shortly",
        ));
    }
    let mut response = forward(node, SIGNING_CERT, body, authorization).await?;
    response.extensions_mut().insert(Relayed);
    Ok(response)
}

/// Marks a certificate answer relayed from the leader (for the outcome counter).
#[derive(Clone, Copy, Debug)]
struct Relayed;
