//! The log explorer: a page every node serves at `/` (its HTML, CSS and JavaScript, from
//! `node/explorer/`, embedded in the binary), and the two small reads only it needs,
//! `GET /logs/<name>/growth` and `GET /logs/<name>/witnesses`.
//!
//! The page trusts the node for nothing it shows as verified: it checks checkpoints, inclusion
//! and consistency proofs, signed entry timestamps and witness cosignatures in the browser,
//! with WebCrypto, against the log keys of the trusted root (see docs/explorer.md). What it is
//! served with keeps the page to itself: a Content-Security-Policy that allows scripts, styles,
//! images and requests from this node only (no inline script, no `eval`, Trusted Types so no
//! string ever becomes markup), no framing, and `nosniff`.

use std::sync::Arc;

use bytes::Bytes;
use hyper::header::{CACHE_CONTROL, HeaderName, HeaderValue};
use hyper::{Method, Response, StatusCode};
use serde_json::{Value, json};
use tlog::policy::{Policy, Quorum, Threshold};

use super::{ApiError, Body, json, response};
use crate::node::Node;
use crate::storage::StateView;
use crate::types::LogName;

/// What the explorer's responses may load and who may frame them: its own scripts, styles,
/// images and requests only; no inline code or `eval`; DOM sinks take no strings.
pub(super) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";

/// The explorer's files: path, content type, bytes.
const ASSETS: [(&str, &str, &[u8]); 8] = [
    (
        "/",
        "text/html; charset=utf-8",
        include_bytes!("../../explorer/index.html"),
    ),
    (
        "/explorer/explorer.css",
        "text/css; charset=utf-8",
        include_bytes!("../../explorer/explorer.css"),
    ),
    (
        "/explorer/app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/app.js"),
    ),
    (
        "/explorer/verify.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/verify.js"),
    ),
    (
        "/explorer/der.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/der.js"),
    ),
    (
        "/explorer/policy.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/policy.js"),
    ),
    (
        "/explorer/plot.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../../explorer/plot.js"),
    ),
    (
        "/explorer/cairn.svg",
        "image/svg+xml",
        include_bytes!("../../explorer/cairn.svg"),
    ),
];

/// The most points `growth` samples (and its default).
const GROWTH_POINTS_MAX: u64 = 256;
const GROWTH_POINTS_DEFAULT: u64 = 64;

/// The reads of one log that only the explorer needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LogRead {
    Growth,
    Witnesses,
}

/// `/logs/<name>/growth` or `/logs/<name>/witnesses`: the log's name and the read.
fn log_read(path: &str) -> Option<(&str, LogRead)> {
    let (name, rest) = path.strip_prefix("/logs/")?.split_once('/')?;
    match rest {
        "growth" => Some((name, LogRead::Growth)),
        "witnesses" => Some((name, LogRead::Witnesses)),
        _ => None,
    }
}

/// Whether `path` is the explorer's: its page, its files, or one of its reads.
pub(super) fn serves(path: &str) -> bool {
    ASSETS.iter().any(|(asset, _, _)| *asset == path)
        || path.starts_with("/explorer/")
        || log_read(path).is_some()
}

pub(super) async fn handle(
    node: &Arc<Node>,
    method: &Method,
    path: &str,
    query: &str,
) -> Response<Body> {
    if method != Method::GET {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} {path}: the explorer is read with GET"),
        )
        .into_response();
    }
    let result = match log_read(path) {
        Some((name, read)) => log(node, name, read, query).await,
        None => asset(path),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// One of the explorer's files, with the headers that confine it.
fn asset(path: &str) -> Result<Response<Body>, ApiError> {
    let (_, content_type, bytes) = ASSETS
        .iter()
        .find(|(asset, _, _)| *asset == path)
        .ok_or_else(|| ApiError::not_found(format!("the explorer has no file {path}")))?;
    let mut reply = response(StatusCode::OK, content_type, Bytes::from_static(bytes));
    let headers = reply.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    // The files change with the binary: revalidate rather than cache across an upgrade.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(reply)
}

async fn log(
    node: &Arc<Node>,
    name: &str,
    read: LogRead,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let log = LogName(name.to_owned());
    if node.logs().get(&log).is_none() {
        return Err(ApiError::not_found(format!("no log named {name:?}")));
    }
    let witnessing = node.witnessing().filter(|w| w.is_witnessed(&log));
    match read {
        LogRead::Witnesses => Ok(json(
            StatusCode::OK,
            &match witnessing {
                None => json!({ "log": name, "witnessed": false, "policy": null, "witnesses": [] }),
                Some(witnessing) => {
                    let sizes = witnessing.witness_sizes(&log);
                    let policy = witnessing.policy();
                    let witnesses: Vec<Value> = policy
                        .witnesses()
                        .iter()
                        .map(|witness| {
                            json!({
                                "name": witness.name,
                                "vkey": witness.verifier.to_vkey(),
                                "cosigned_size": sizes.get(&witness.name),
                            })
                        })
                        .collect();
                    json!({
                        "log": name,
                        "witnessed": true,
                        "policy": policy_text(policy),
                        "witnesses": witnesses,
                    })
                }
            },
        )),
        LogRead::Growth => {
            let points = growth_points(query)?;
            // A witnessed log shows only what it has published.
            let published = witnessing.map(|w| w.published(&log).map_or(0, |p| p.size));
            let reader = node.reader().clone();
            node.blocking()
                .run(move || {
                    let view = reader.view().map_err(storage_error)?;
                    growth(&view, &log, points, published)
                })
                .await
        }
    }
}

/// `points=<2..256>`, default 64.
fn growth_points(query: &str) -> Result<u64, ApiError> {
    let mut points = GROWTH_POINTS_DEFAULT;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match name.as_ref() {
            "points" => {
                points = tlog::checkpoint::parse_decimal(&value)
                    .ok()
                    .filter(|points| (2..=GROWTH_POINTS_MAX).contains(points))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("points: want 2 to {GROWTH_POINTS_MAX}"),
                        )
                    })?;
            }
            other => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!(
                        "unknown parameter {:?} (points)",
                        other.chars().take(50).collect::<String>()
                    ),
                ));
            }
        }
    }
    Ok(points)
}

/// `{"log", "treeSize", "points": [[size, integrated time in ms or null], ...]}`: the log's size
/// after leaves spread evenly over it, the last one included, and when each was integrated
/// (null for leaves this replica caught up on from a snapshot). One index lookup per point.
fn growth(
    view: &StateView,
    log: &LogName,
    points: u64,
    published: Option<u64>,
) -> Result<Response<Body>, ApiError> {
    let committed = view
        .head(log)
        .map_err(storage_error)?
        .map_or(0, |head| head.tree_size);
    let size = published.map_or(committed, |published| published.min(committed));
    let mut samples: Vec<Value> = Vec::new();
    if size > 0 {
        let steps = points.min(size);
        let mut last = None;
        for step in 0..steps {
            // Leaf 0 first, leaf size - 1 last, evenly between (u128: no overflow).
            let index = if steps == 1 {
                0
            } else {
                u64::try_from(u128::from(step) * u128::from(size - 1) / u128::from(steps - 1))
                    .unwrap_or(size - 1)
            };
            if last == Some(index) {
                continue;
            }
            last = Some(index);
            let time = view.integrated_time_ms(log, index).map_err(storage_error)?;
            samples.push(json!([index + 1, time]));
        }
    }
    Ok(json(
        StatusCode::OK,
        &json!({ "log": log.0, "treeSize": size, "points": samples }),
    ))
}

/// The policy as a C2SP tlog-policy file (without the witnesses' URLs, which are the
/// operator's business): what the page checks cosignatures against.
fn policy_text(policy: &Policy) -> String {
    let mut text = String::new();
    for log in policy.logs() {
        text.push_str(&format!("log {}\n", log.verifier.to_vkey()));
    }
    for witness in policy.witnesses() {
        text.push_str(&format!(
            "witness {} {}\n",
            witness.name,
            witness.verifier.to_vkey()
        ));
    }
    for group in policy.groups() {
        let threshold = match group.threshold {
            Threshold::All => "all".to_owned(),
            Threshold::Any => "any".to_owned(),
            Threshold::AtLeast(k) => k.to_string(),
        };
        text.push_str(&format!(
            "group {} {threshold} {}\n",
            group.name,
            group.members.join(" ")
        ));
    }
    match policy.quorum() {
        Quorum::None => text.push_str("quorum none\n"),
        Quorum::Named(name) => text.push_str(&format!("quorum {name}\n")),
    }
    text
}

fn storage_error(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "storage_error",
        error.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script and style the page loads is one of the files served, from this node.
    #[test]
    fn the_page_loads_only_files_the_node_serves() {
        let page = std::str::from_utf8(ASSETS[0].2).unwrap();
        let mut referenced = 0;
        for attribute in ["src=\"", "href=\""] {
            for rest in page.split(attribute).skip(1) {
                let url = rest.split('"').next().unwrap();
                if url.starts_with('#') {
                    continue;
                }
                assert!(url.starts_with("/explorer/"), "{url} is not the node's");
                assert!(ASSETS.iter().any(|(path, _, _)| *path == url), "{url}");
                referenced += 1;
            }
        }
        assert!(referenced >= 3);
        // No inline script or style: the policy would block it anyway.
        assert!(!page.contains("<script>") && !page.contains("style="));
        // Modules import only each other, by relative path.
        for (path, _, bytes) in &ASSETS[2..] {
            let Ok(text) = std::str::from_utf8(bytes) else {
                continue;
            };
            for rest in text.split("from \"").skip(1) {
                let from = rest.split('"').next().unwrap();
                let url = format!("/explorer/{}", from.trim_start_matches("./"));
                assert!(
                    from.starts_with("./") && ASSETS.iter().any(|(p, _, _)| *p == url),
                    "{path}: imports {from}"
                );
            }
            assert!(!text.contains("import("), "{path}: no dynamic import");
            assert!(
                !text.contains("eval(") && !text.contains("innerHTML"),
                "{path}"
            );
        }
    }

    #[test]
    fn the_content_security_policy_is_strict() {
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "require-trusted-types-for 'script'",
        ] {
            assert!(CONTENT_SECURITY_POLICY.contains(directive), "{directive}");
        }
        assert!(!CONTENT_SECURITY_POLICY.contains("unsafe"));
        let served = asset("/explorer/app.js").unwrap();
        assert_eq!(served.headers()["x-content-type-options"], "nosniff");
        assert_eq!(
            served.headers()["content-security-policy"],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(
            served.headers()["content-type"],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(asset("/explorer/nothing.js").unwrap_err().status, 404);
    }

    #[test]
    fn log_reads_are_routed_by_name() {
        assert_eq!(
            log_read("/logs/artifacts/growth"),
            Some(("artifacts", LogRead::Growth))
        );
        assert_eq!(
            log_read("/logs/certificates/witnesses"),
            Some(("certificates", LogRead::Witnesses))
        );
        assert_eq!(log_read("/logs/artifacts/checkpoint"), None);
        assert_eq!(log_read("/logs/growth"), None);
        assert!(serves("/") && serves("/explorer/app.js") && !serves("/logs"));
        assert_eq!(growth_points("").unwrap(), GROWTH_POINTS_DEFAULT);
        assert_eq!(growth_points("points=2").unwrap(), 2);
        for bad in ["points=1", "points=257", "points=x", "other=1"] {
            assert_eq!(growth_points(bad).unwrap_err().status, 400, "{bad}");
        }
    }

    /// The policy served is the policy: it parses back to the same witnesses, groups and
    /// quorum.
    #[test]
    fn the_policy_text_parses_back() {
        let log = tlog::keys::Ed25519Signer::new(
            "log.example",
            ed25519_dalek::SigningKey::from_bytes(&[1; 32]),
        )
        .unwrap();
        let witness = |seed: u8| {
            tlog::keys::Cosigner::new(
                &format!("w{seed}.example"),
                ed25519_dalek::SigningKey::from_bytes(&[seed; 32]),
            )
            .unwrap()
            .verifier()
            .to_vkey()
        };
        let text = format!(
            "log {} http://log.example\nwitness a {} http://a.example\nwitness b {}\n\
             witness c {}\ngroup two 2 a b c\ngroup g any two a\nquorum g\n",
            log.verifier().to_vkey(),
            witness(2),
            witness(3),
            witness(4)
        );
        let policy = Policy::parse(&text).unwrap();
        let served = policy_text(&policy);
        assert!(!served.contains("http://"));
        let parsed = Policy::parse(&served).unwrap();
        assert_eq!(parsed.witnesses().len(), 3);
        assert_eq!(parsed.groups(), policy.groups());
        assert_eq!(parsed.quorum(), policy.quorum());
        assert_eq!(
            parsed.logs()[0].verifier.to_vkey(),
            policy.logs()[0].verifier.to_vkey()
        );
    }
}
