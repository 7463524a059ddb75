//! Operations: readiness, metrics and the admin API (cluster membership, log rotation, the
//! snapshot a backup copies), the last behind a bearer token.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use openraft::ServerState;
use serde::Deserialize;

use super::{ApiError, Body, json, read_body, text};
use crate::node::{MembershipError, Node, RotateError};
use crate::types::{LogName, NodeAddress, NodeId};

/// Admin requests are small JSON documents.
const ADMIN_BODY_BYTES_MAX: usize = 64 * 1024;
/// The strict JSON reader's bounds for an admin body.
const ADMIN_JSON_LIMITS: crate::api::json::Limits = crate::api::json::Limits {
    bytes: ADMIN_BODY_BYTES_MAX,
    depth: 8,
    members: 1024,
};
/// How far the applied index may trail the local log and still count as ready.
const READY_APPLY_LAG_MAX: u64 = 1_000;

/// Ready means: running, a member of a cluster that has a leader, and applied (nearly) up to
/// the local log, so reads reflect recent commits.
pub(super) async fn ready(node: &Arc<Node>) -> Response<Body> {
    let metrics = node.raft().metrics().borrow().clone();
    let member = metrics
        .membership_config
        .membership()
        .get_node(&node.id())
        .is_some();
    let applied = metrics.last_applied.map_or(0, |log_id| log_id.index);
    let logged = metrics.last_log_index.unwrap_or(0);
    let problem = if metrics.running_state.is_err() {
        Some("raft has stopped".to_string())
    } else if !member {
        Some("not a member of a cluster yet".to_string())
    } else if metrics.current_leader.is_none() {
        Some("no leader".to_string())
    } else if logged.saturating_sub(applied) > READY_APPLY_LAG_MAX {
        Some(format!("applied index {applied} trails log index {logged}"))
    } else {
        None
    };
    match problem {
        None => text(StatusCode::OK, "ready\n"),
        Some(problem) => ApiError::unavailable("not_ready", problem).into_response(),
    }
}

/// Prometheus text exposition of the node's metrics.
pub(super) fn metrics(node: &Arc<Node>) -> Response<Body> {
    match node.render_metrics() {
        Ok(body) => super::response(
            StatusCode::OK,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body.into(),
        ),
        Err(error) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics_failed",
            error.to_string(),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InitRequest {
    /// Every initial voter: id → its addresses.
    members: BTreeMap<NodeId, AddressRequest>,
}

/// A node's addresses as the admin API takes them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddressRequest {
    /// The public API URL (http or https).
    api_url: String,
    /// The cluster listener's URL (https: Raft goes over mutual TLS only).
    cluster_url: String,
}

impl AddressRequest {
    fn checked(self) -> Result<NodeAddress, ApiError> {
        Ok(NodeAddress {
            api_url: checked_url("api_url", &self.api_url, false)?,
            cluster_url: checked_url("cluster_url", &self.cluster_url, true)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LearnerRequest {
    id: NodeId,
    api_url: String,
    cluster_url: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MembershipRequest {
    /// The voters after the change.
    voters: BTreeSet<NodeId>,
    /// Whether removed voters stay on as learners.
    #[serde(default)]
    retain: bool,
}

pub(super) async fn handle(node: &Arc<Node>, request: Request<Incoming>) -> Response<Body> {
    match handle_admin(node, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn handle_admin(
    node: &Arc<Node>,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    authorize(node, &request)?;
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    match (method, path.as_str()) {
        (Method::GET, "/admin/status") => Ok(json(StatusCode::OK, &status(node))),
        (Method::POST, "/admin/init") => {
            let init: InitRequest = parse(request).await?;
            if init.members.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid_field",
                    "members: at least one voter",
                ));
            }
            let members = init
                .members
                .into_iter()
                .map(|(id, address)| Ok((id, address.checked()?)))
                .collect::<Result<BTreeMap<_, _>, ApiError>>()?;
            node.raft().initialize(members).await.map_err(|error| {
                ApiError::new(StatusCode::CONFLICT, "init_refused", error.to_string())
            })?;
            Ok(json(StatusCode::OK, &status(node)))
        }
        (Method::POST, "/admin/learners") => {
            let learner: LearnerRequest = parse(request).await?;
            let address = AddressRequest {
                api_url: learner.api_url,
                cluster_url: learner.cluster_url,
            }
            .checked()?;
            node.raft()
                .add_learner(learner.id, address, true)
                .await
                .map_err(|error| membership_error(&error.to_string()))?;
            Ok(json(StatusCode::OK, &status(node)))
        }
        (Method::POST, "/admin/membership") => {
            let change: MembershipRequest = parse(request).await?;
            node.change_voters(change.voters, change.retain)
                .await
                .map_err(|error| match error {
                    MembershipError::NoVoters => {
                        ApiError::bad_request("invalid_field", "voters: at least one voter")
                    }
                    error => membership_error(&error.to_string()),
                })?;
            Ok(json(StatusCode::OK, &status(node)))
        }
        (Method::GET, "/admin/backup") => {
            // What `cairn-node backup` copies the leaves up to: this node's state as of one
            // read transaction (see `crate::backup`).
            let reader = node.reader().clone();
            let snapshot = node
                .blocking()
                .run(move || reader.backup_snapshot())
                .await
                .map_err(|error| ApiError::unavailable("storage", error.to_string()))?;
            let bytes = postcard::to_stdvec(&snapshot).map_err(|error| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "encoding",
                    error.to_string(),
                )
            })?;
            Ok(super::response(
                StatusCode::OK,
                "application/octet-stream",
                bytes.into(),
            ))
        }
        (Method::POST, "/admin/logs/rotate") => {
            let rotation: RotateRequest = parse(request).await?;
            let (log, successor) = (LogName(rotation.log), LogName(rotation.successor));
            check_members_have(node, &successor).await?;
            let record = node.rotate(&log, &successor).await.map_err(rotate_error)?;
            let opened = node
                .logs()
                .get(&successor)
                .map(|config| (config.origin.clone(), super::log_api::verifier_key(config)))
                .unwrap_or_default();
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({
                    "frozen": {
                        "name": record.log.0,
                        "final_size": record.final_size,
                        "final_checkpoint": record.final_checkpoint,
                        "frozen_unix_ms": record.at_unix_ms,
                    },
                    "opened": {
                        "name": record.successor.0,
                        "origin": opened.0,
                        "verifier_key": opened.1,
                    },
                }),
            ))
        }
        (_, path) => Err(ApiError::not_found(format!("no admin endpoint {path}"))),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateRequest {
    /// The log to freeze.
    log: String,
    /// Its configured successor, to open.
    successor: String,
}

fn rotate_error(error: RotateError) -> ApiError {
    match error {
        RotateError::NotLeader(leader) => ApiError::new(
            StatusCode::CONFLICT,
            "not_leader",
            format!(
                "rotations are run by the leader; send this to {}",
                leader
                    .as_deref()
                    .unwrap_or("the leader, once one is elected")
            ),
        ),
        RotateError::Invalid(error) if error.is_configuration() => {
            ApiError::bad_request("invalid_rotation", error.to_string())
        }
        RotateError::Invalid(error) => {
            ApiError::new(StatusCode::CONFLICT, "rotation_refused", error.to_string())
        }
        RotateError::Refused(reason) => {
            ApiError::new(StatusCode::CONFLICT, "rotation_refused", reason)
        }
        error @ RotateError::Failed(_) => ApiError::unavailable(
            "outcome_unknown",
            format!("{error}; GET /logs shows whether the log is frozen"),
        ),
    }
}

/// Before a rotation is proposed: every member (voters and learners) must already serve the
/// successor under the same origin and key as this node, or a replica that lacks it would stop
/// when it applies the rotation. Asked with `GET /logs` on each member's cluster listener (mutual
/// TLS, like every call between nodes); a node whose environment relays no writes (the
/// simulator) has no client to ask with and checks nothing.
async fn check_members_have(node: &Node, successor: &LogName) -> Result<(), ApiError> {
    let Some(client) = node.forward_client() else {
        return Ok(());
    };
    let Some(config) = node.logs().get(successor) else {
        return Err(ApiError::bad_request(
            "invalid_rotation",
            format!("log {successor} is not configured on this node"),
        ));
    };
    let want = (config.origin.clone(), super::log_api::verifier_key(config));
    let members: Vec<(NodeId, String)> = node
        .raft()
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .nodes()
        .map(|(id, address)| (*id, address.cluster_url.trim_end_matches('/').to_owned()))
        .collect();
    let mut missing = Vec::new();
    for (id, url) in members {
        if id == node.id() {
            continue;
        }
        match member_log(client, &url, successor).await {
            Ok(Some(found)) if found == want => {}
            Ok(Some(_)) => missing.push(format!("node {id} ({url}) has another origin or key")),
            Ok(None) => missing.push(format!("node {id} ({url}) does not have it")),
            Err(error) => missing.push(format!("node {id} ({url}): {error}")),
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "successor_missing",
            format!(
                "every member must serve log {successor} before it opens (configure it and \
                 restart the node; `cairn-node log prepare` writes it): {}",
                missing.join("; ")
            ),
        ))
    }
}

/// The origin and verifier key under which the node at `url` serves `log`, if it does.
async fn member_log(
    client: &crate::network::ClusterClient,
    url: &str,
    log: &LogName,
) -> Result<Option<(String, String)>, String> {
    use http_body_util::BodyExt as _;
    let request = Request::get(format!("{url}/logs"))
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .map_err(|error| error.to_string())?;
    let answer = tokio::time::timeout(crate::node::FORWARD_TIMEOUT, client.request(request))
        .await
        .map_err(|_| "no answer in time".to_string())?
        .map_err(|error| error.to_string())?;
    if answer.status() != StatusCode::OK {
        return Err(format!("GET /logs answered {}", answer.status()));
    }
    let body = http_body_util::Limited::new(answer.into_body(), ADMIN_BODY_BYTES_MAX)
        .collect()
        .await
        .map_err(|error| error.to_string())?
        .to_bytes();
    let listing: serde_json::Value =
        serde_json::from_slice(&body).map_err(|error| format!("GET /logs: {error}"))?;
    let found = listing["logs"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["name"].as_str() == Some(log.0.as_str()))
        .map(|entry| {
            (
                entry["origin"].as_str().unwrap_or_default().to_string(),
                entry["verifier_key"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        });
    Ok(found)
}

fn membership_error(message: &str) -> ApiError {
    // Membership changes go to the leader; on another node the caller should retry there.
    ApiError::new(StatusCode::CONFLICT, "membership_change_refused", message)
}

fn checked_url(field: &str, url: &str, https_only: bool) -> Result<String, ApiError> {
    let scheme_ok = url.starts_with("https://") || (!https_only && url.starts_with("http://"));
    if scheme_ok && url.len() <= 2048 {
        Ok(url.trim_end_matches('/').to_string())
    } else {
        let want = if https_only { "an https" } else { "an http(s)" };
        Err(ApiError::bad_request(
            "invalid_field",
            format!("{field}: {url:?} is not {want} URL"),
        ))
    }
}

fn authorize(node: &Node, request: &Request<Incoming>) -> Result<(), ApiError> {
    let presented = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if node.admin_token_matches(presented) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "admin token missing or wrong",
        ))
    }
}

async fn parse<T: for<'de> Deserialize<'de>>(request: Request<Incoming>) -> Result<T, ApiError> {
    let body = read_body(request, ADMIN_BODY_BYTES_MAX).await?;
    super::strict_json_as(&body, &ADMIN_JSON_LIMITS)
}

/// The node's view of the cluster, for people and scripts.
pub(super) fn status(node: &Node) -> serde_json::Value {
    let metrics = node.raft().metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: Vec<NodeId> = membership.voter_ids().collect();
    let nodes: BTreeMap<String, String> = membership
        .nodes()
        .map(|(id, node)| (id.to_string(), node.api_url.clone()))
        .collect();
    serde_json::json!({
        "id": node.id(),
        "state": match metrics.state {
            ServerState::Leader => "leader",
            ServerState::Follower => "follower",
            ServerState::Candidate => "candidate",
            ServerState::Learner => "learner",
            ServerState::Shutdown => "shutdown",
        },
        "term": metrics.current_term,
        "leader": metrics.current_leader,
        "last_log_index": metrics.last_log_index,
        "last_applied_index": metrics.last_applied.map(|log_id| log_id.index),
        "voters": voters,
        "nodes": nodes,
    })
}
