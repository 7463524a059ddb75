//! Trust material for Sigstore clients: `GET /trust/trusted_root.json` (a `TrustedRoot`,
//! media type v0.1, the only one sigstore-python 4.5 accepts), `GET /trust/signing_config.json`
//! (a `SigningConfig` v0.2) and `GET /trust/client_trust_config.json` (both together, what
//! `sigstore --trust-config` reads).
//!
//! Every URL a client calls is the node's configured public URL (`api_url`), never the
//! request's `Host` header, which anyone can set to send clients elsewhere. The one exception
//! is the tlogs' `baseUrl`, which names the log rather than being called:
//! `<scheme>://<origin>[:port of the public URL]`, so that clients find the log from a
//! checkpoint's key name (docs/decisions/0005-origins-and-base-urls.md). They carry
//! public keys and certificates only. Parsers on the client side are strict (pydantic with
//! `extra="forbid"`), so only protobuf-specs field names appear.
//!
//! - `tlogs`: each artifact log twice, with its Ed25519 checkpoint key both times: as a Rekor v1
//!   log (`logId` = SHA-256 of the key's SPKI, the id its v1 entries carry,
//!   `rekor_v1::v1_log_id`) and as a C2SP log (`logId` = its C2SP key id, the id its v2 entries
//!   carry, `log_api::log_key_id`); see docs/decisions/0004-v1-checkpoint.md. Every log of the
//!   family, oldest first, each key valid from its opening and a frozen one until its rotation
//!   (`crate::lifecycle::Lifecycle::window`, docs/decisions/0010-log-lifecycle.md). Then each
//!   certificate log (the CA's, and its successors) once, with its C2SP key id as `logId`, and
//!   its window likewise: no bundle carries its entries, but the explorer verifies its
//!   checkpoints against the key listed here, not against what the node says in `/logs`.
//! - `certificateAuthorities`: the CA's intermediate and root; with `[ca.next]`, the next
//!   ones too, and first the retired ones (`[[ca.retired]]`, public parts only), each with its
//!   window (docs/decisions/0012-ca-key-rotation.md).
//! - `ctlogs`: the certificate log's SCT key (ECDSA P-256; `logId` = SHA-256 of its SPKI),
//!   and the retired and next ones, likewise.
//! - `timestampAuthorities`: the cluster's TSA (`tsa_api`), its signing certificate and root,
//!   when the node runs one, and the retired (`[[ca.tsa.retired]]`) and next ones, likewise.
//! - The signing config lists the CA, the TSA (`tsaUrls`, full URLs) and the log's Rekor v2
//!   API beside its v1 API. A v2 entry carries no signed time, so v2 is offered only with a
//!   TSA: clients pick the highest `majorApiVersion` of an operator (sigstore-python, cosign),
//!   and a v2 bundle without a timestamp verifies nowhere. Every selector it serves is
//!   satisfiable (no `tsaConfig` without a TSA): clients must refuse a config whose selector
//!   too few services meet.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::log_api::{ARTIFACT_LOG, log_key_id};
use super::rekor_v1::{public_key_spki, v1_log_id};
use super::{ApiError, Body};
use crate::node::Node;
use crate::types::LogName;

/// The paths served here.
pub(super) const ROUTES: [&str; 3] = [
    "/trust/trusted_root.json",
    "/trust/signing_config.json",
    "/trust/client_trust_config.json",
];

/// The trusted root media type sigstore-python 4.5.1 accepts (v0.2 parses but is refused).
pub(crate) const TRUSTED_ROOT_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.trustedroot+json;version=0.1";
/// The signing config media type (v0.1 is refused by sigstore-python 4.5.1).
pub(crate) const SIGNING_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.signingconfig.v0.2+json";
/// The client trust config media type.
pub(crate) const CLIENT_TRUST_CONFIG_MEDIA_TYPE: &str =
    "application/vnd.dev.sigstore.clienttrustconfig.v0.1+json";
/// Who runs the services, as signing configs name it (clients keep one service per operator).
const OPERATOR: &str = "cairn";

pub(super) async fn handle(node: &Arc<Node>, request: Request<Incoming>) -> Response<Body> {
    if request.method() != Method::GET {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "trust documents are read with GET",
        )
        .into_response();
    }
    let Some(base_url) = node.public_url() else {
        return ApiError::not_found("this node has no public URL configured").into_response();
    };
    let Some((scheme, host)) = base_url.split_once("://") else {
        return ApiError::not_found("this node's public URL has no scheme").into_response();
    };
    let host = host.trim_end_matches('/');
    let documents = match TrustDocuments::new(node, scheme, host) {
        Ok(documents) => documents,
        Err(error) => return error.into_response(),
    };
    let document = match request.uri().path() {
        "/trust/trusted_root.json" => documents.trusted_root,
        "/trust/signing_config.json" => documents.signing_config,
        _ => documents.client_trust_config(),
    };
    super::json(StatusCode::OK, &document)
}

/// A CA the trusted root lists: from and until when it signs (`None`: since the deployment
/// began, until further notice), its chain (intermediate, root) and its SCT key's SPKI.
type CaWindow<'a> = (Option<u64>, Option<u64>, [&'a [u8]; 2], Option<&'a [u8]>);

/// The trusted root and signing config of this deployment, reached at `scheme://host`.
struct TrustDocuments {
    trusted_root: Value,
    signing_config: Value,
}

impl TrustDocuments {
    fn new(node: &Node, scheme: &str, host: &str) -> Result<TrustDocuments, ApiError> {
        let base_url = &format!("{scheme}://{host}");
        let family = LogName(ARTIFACT_LOG.to_string());
        if node.logs().get(&family).is_none() {
            return Err(ApiError::not_found("this cluster has no artifact log"));
        }
        let ca = node
            .ca()
            .ok_or_else(|| ApiError::not_found("this cluster runs no CA: no trust documents"))?;
        let root = ca.material.current.authority.chain_der()[1];
        // Keys and services are valid from the first CA's start: the oldest retired one's
        // `from`, or the root certificate's notBefore: nothing this deployment signed can be
        // older than its CA.
        let first_start_ms = u64::try_from(not_before_seconds(root)?)
            .unwrap_or(0)
            .saturating_mul(1000)
            .min(ca.material.first_from_ms().unwrap_or(u64::MAX));
        let valid_for = json!({ "start": rfc3339(seconds(first_start_ms, false))? });
        // Every artifact log, then every certificate log, oldest first: a frozen one with the
        // end of its window (`crate::lifecycle`), so that entries it holds verify and no new
        // ones do. The artifact logs come first: sigstore-python's detached verification asks
        // the first tlog's `baseUrl`.
        let lifecycle = node.lifecycle();
        let mut tlogs = Vec::new();
        let mut families = vec![(family.clone(), true)];
        if lifecycle.root(&ca.log) != &family {
            families.push((ca.log.clone(), false));
        }
        for (head, artifact) in families {
            for name in lifecycle.family(&head) {
                let Some(log) = node.logs().get(&name) else {
                    continue;
                };
                let (start_ms, end_ms) = lifecycle.window(&name, first_start_ms);
                let window = window(start_ms, end_ms)?;
                // An artifact log has two identities, the v1 one first (the one Sigstore
                // clients sign with); a certificate log only its C2SP one: no bundle names it,
                // it is listed so that its checkpoints are verified against this document.
                let log_ids = if artifact {
                    vec![v1_log_id(log), log_key_id(log)]
                } else {
                    vec![log_key_id(log)]
                };
                let tlog_url = tlog_base_url(scheme, &log.origin, host);
                for log_id in log_ids {
                    tlogs.push(json!({
                        "baseUrl": tlog_url,
                        "hashAlgorithm": "SHA2_256",
                        "publicKey": {
                            "rawBytes": BASE64.encode(public_key_spki(log)),
                            "keyDetails": "PKIX_ED25519",
                            "validFor": window,
                        },
                        "logId": { "keyId": BASE64.encode(log_id.as_bytes()) },
                    }));
                }
            }
        }
        // The CA's intermediates and SCT keys, oldest first: the retired ones (public parts
        // only, `[[ca.retired]]`), the current one and, with `[ca.next]` configured, the next,
        // listed before it signs (docs/decisions/0012-ca-key-rotation.md). A replaced
        // intermediate's window ends a leaf's lifetime after the switch: the certificates it
        // issued just before are used to sign until they expire, and clients check the CA's
        // window at the signing time. An SCT key's ends at the switch: an SCT's time is its
        // certificate's notBefore.
        let mut signers: Vec<CaWindow<'_>> = Vec::new();
        for retired in &ca.material.retired {
            let [intermediate, root] = &retired.chain_der;
            signers.push((
                Some(retired.from_ms),
                Some(retired.until_ms),
                [intermediate.as_slice(), root.as_slice()],
                retired.ct_spki_der.as_deref(),
            ));
        }
        for (material, from_ms, until_ms) in ca.material.all() {
            let chain = material.authority.chain_der();
            signers.push((from_ms, until_ms, chain, Some(material.ct_key.spki_der())));
        }
        let mut authorities = Vec::new();
        let mut ctlogs: Vec<Value> = Vec::new();
        let mut ct_start_ms = first_start_ms;
        for (from_ms, until_ms, [intermediate, root], spki) in signers {
            let (organization, common_name) = subject(intermediate)?;
            let start_ms = from_ms.unwrap_or(first_start_ms);
            let leaf_ms = ca::cert::LEAF_VALIDITY_SECONDS * 1000;
            authorities.push(json!({
                "subject": { "organization": organization, "commonName": common_name },
                "uri": base_url,
                "certChain": { "certificates": [
                    { "rawBytes": BASE64.encode(intermediate) },
                    { "rawBytes": BASE64.encode(root) },
                ] },
                "validFor": window(start_ms, until_ms.map(|end| end.saturating_add(leaf_ms)))?,
            }));
            let Some(spki) = spki else { continue };
            let log_id = BASE64.encode(<sha2::Sha256 as sha2::Digest>::digest(spki));
            // The same SCT key kept across a switch stays one entry, valid throughout.
            if let Some(previous) = ctlogs.last_mut()
                && previous["logId"]["keyId"] == json!(log_id)
            {
                previous["publicKey"]["validFor"] = window(ct_start_ms, until_ms)?;
                continue;
            }
            ct_start_ms = start_ms;
            ctlogs.push(json!({
                "baseUrl": format!("{base_url}/api/v2/ctLog"),
                "hashAlgorithm": "SHA2_256",
                "publicKey": {
                    "rawBytes": BASE64.encode(spki),
                    "keyDetails": "PKIX_ECDSA_P256_SHA_256",
                    "validFor": window(start_ms, until_ms)?,
                },
                "logId": { "keyId": log_id },
            }));
        }
        let mut trusted_root = json!({
            "mediaType": TRUSTED_ROOT_MEDIA_TYPE,
            "tlogs": tlogs,
            "certificateAuthorities": authorities,
            "ctlogs": ctlogs,
            "timestampAuthorities": [],
        });
        let mut tsa_urls = Vec::new();
        if let Some(tsa) = node.tsa() {
            let url = format!("{base_url}{}", super::tsa_api::TIMESTAMP);
            let first_start_ms = u64::try_from(not_before_seconds(tsa.current.chain_der()[1])?)
                .unwrap_or(0)
                .saturating_mul(1000)
                .min(tsa.first_from_ms().unwrap_or(u64::MAX));
            let mut authorities = Vec::new();
            // Each TSA valid while it signs, retired ones (`[[ca.tsa.retired]]`) first: a
            // token's genTime picks its key (`tsa_api`).
            let retired = tsa.retired.iter().map(|retired| {
                let [signer, root] = &retired.chain_der;
                (
                    [signer.as_slice(), root.as_slice()],
                    Some(retired.from_ms),
                    Some(retired.until_ms),
                )
            });
            let signing = tsa
                .all()
                .into_iter()
                .map(|(material, from_ms, until_ms)| (material.chain_der(), from_ms, until_ms));
            for ([signer, root], from_ms, until_ms) in retired.chain(signing) {
                let (organization, common_name) = subject(signer)?;
                authorities.push(json!({
                    "subject": { "organization": organization, "commonName": common_name },
                    "uri": url,
                    "certChain": { "certificates": [
                        { "rawBytes": BASE64.encode(signer) },
                        { "rawBytes": BASE64.encode(root) },
                    ] },
                    "validFor": window(from_ms.unwrap_or(first_start_ms), until_ms)?,
                }));
            }
            trusted_root["timestampAuthorities"] = Value::Array(authorities);
            tsa_urls.push(json!({
                "url": url,
                "majorApiVersion": 1,
                "validFor": window(first_start_ms, None)?,
                "operator": OPERATOR,
            }));
        }
        let signing_config = signing_config(base_url, &valid_for, tsa_urls);
        Ok(TrustDocuments {
            trusted_root,
            signing_config,
        })
    }

    fn client_trust_config(self) -> Value {
        json!({
            "mediaType": CLIENT_TRUST_CONFIG_MEDIA_TYPE,
            "trustedRoot": self.trusted_root,
            "signingConfig": self.signing_config,
        })
    }
}

/// A transparency log's `baseUrl` in the trusted root: its origin as the URL's host, so that
/// every client finds the log that signed a checkpoint from the signature's key name, which
/// is the origin (docs/decisions/0005-origins-and-base-urls.md): sigstore-go takes the URL's
/// host name (`url.Hostname()`, no port) as the name, sigstore-js requires the name to be a
/// substring of the URL. When the origin is a bare host name, the port the request came in on
/// is kept, so that a development cluster's `*.localhost` URL reaches this node; an origin with
/// a path or a port (made before origins were host names) is used as it is, which sigstore-go
/// cannot match.
fn tlog_base_url(scheme: &str, origin: &str, request_host: &str) -> String {
    let port = match request_host.rsplit_once(':') {
        Some((_, port))
            if !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !origin.contains(['/', ':']) =>
        {
            format!(":{port}")
        }
        _ => String::new(),
    };
    format!("{scheme}://{origin}{port}")
}

/// The signing config: the CA and the Rekor v1 API at `base_url`, the timestamp authorities
/// `tsa_urls` (full URLs, as `Service` objects), and, when there is a TSA, the Rekor v2 API
/// (first: the one clients that know both pick).
///
/// A selector is served only over services that satisfy it: protobuf-specs says a client MUST
/// fail when fewer services than the selector asks for are valid, and clients do (sigstore-js
/// refuses a `tsaConfig` with no TSA, "No valid TSAs found"; sigstore-python raises "Expected 1
/// services"). With no TSA, `tsaConfig` is left out, which every client reads as "no
/// timestamps wanted" (sigstore-js adds no TSA witness, sigstore-python and sigstore-go select
/// nothing).
fn signing_config(base_url: &str, valid_for: &Value, tsa_urls: Vec<Value>) -> Value {
    let service = json!({
        "url": base_url,
        "majorApiVersion": 1,
        "validFor": valid_for,
        "operator": OPERATOR,
    });
    let has_tsa = !tsa_urls.is_empty();
    let mut rekor = vec![service.clone()];
    if has_tsa {
        let mut v2 = service.clone();
        v2["majorApiVersion"] = json!(2);
        rekor.insert(0, v2);
    }
    let mut config = json!({
        "mediaType": SIGNING_CONFIG_MEDIA_TYPE,
        "caUrls": [service],
        "oidcUrls": [],
        "rekorTlogUrls": rekor,
        "rekorTlogConfig": { "selector": "ANY" },
    });
    config["tsaUrls"] = Value::Array(tsa_urls);
    if has_tsa {
        config["tsaConfig"] = json!({ "selector": "ANY" });
    }
    config
}

fn certificate(der: &[u8]) -> Result<x509_parser::certificate::X509Certificate<'_>, ApiError> {
    use x509_parser::prelude::FromDer as _;
    x509_parser::certificate::X509Certificate::from_der(der)
        .map(|(_, certificate)| certificate)
        .map_err(|error| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "bad_ca_certificate",
                error.to_string(),
            )
        })
}

/// The certificate's notBefore, in seconds since the epoch.
fn not_before_seconds(der: &[u8]) -> Result<i64, ApiError> {
    Ok(certificate(der)?.validity().not_before.timestamp())
}

/// A `validFor` from `start_ms` (rounded down to the second) to `end_ms` (rounded up), if any.
fn window(start_ms: u64, end_ms: Option<u64>) -> Result<Value, ApiError> {
    let mut window = json!({ "start": rfc3339(seconds(start_ms, false))? });
    if let Some(end_ms) = end_ms {
        window["end"] = json!(rfc3339(seconds(end_ms, true))?);
    }
    Ok(window)
}

/// Milliseconds since the epoch as whole seconds, rounded down for a window's start and up for
/// its end, so the window covers every time in it.
fn seconds(unix_ms: u64, up: bool) -> i64 {
    let whole = unix_ms / 1000 + u64::from(up && !unix_ms.is_multiple_of(1000));
    i64::try_from(whole).unwrap_or(i64::MAX)
}

/// Seconds since the epoch as RFC 3339 UTC.
fn rfc3339(seconds: i64) -> Result<String, ApiError> {
    let time = time::OffsetDateTime::from_unix_timestamp(seconds).map_err(|error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "bad_ca_certificate",
            error.to_string(),
        )
    })?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    ))
}

/// The organization and common name of a certificate's subject (empty if absent).
fn subject(der: &[u8]) -> Result<(String, String), ApiError> {
    let certificate = certificate(der)?;
    let subject = certificate.subject();
    let organization = subject
        .iter_organization()
        .next()
        .and_then(|value| value.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let common_name = subject
        .iter_common_name()
        .next()
        .and_then(|value| value.as_str().ok())
        .unwrap_or_default()
        .to_string();
    Ok((organization, common_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// protobuf-specs `ServiceConfiguration`: a client MUST fail when fewer valid services
    /// than the selector asks for are listed (ANY: one; EXACT: `count`; ALL: any number). A
    /// missing configuration asks for nothing.
    fn satisfiable(services: &Value, config: Option<&Value>) -> bool {
        let listed = services.as_array().map_or(0, Vec::len);
        let Some(config) = config else {
            return true;
        };
        match config["selector"].as_str() {
            Some("ALL") => true,
            Some("ANY") => listed >= 1,
            Some("EXACT") => config["count"]
                .as_u64()
                .is_some_and(|count| count >= 1 && listed as u64 >= count),
            _ => false,
        }
    }

    fn check(config: &Value) {
        assert!(satisfiable(
            &config["rekorTlogUrls"],
            config.get("rekorTlogConfig")
        ));
        assert!(satisfiable(&config["tsaUrls"], config.get("tsaConfig")));
        assert!(
            !config["caUrls"]
                .as_array()
                .unwrap_or(&Vec::new())
                .is_empty()
        );
    }

    /// sigstore-go's rule for a Rekor v2 (C2SP) checkpoint: the note's key name is the host
    /// name of the log's `baseUrl` (`url.Hostname()`: no port, no brackets).
    fn sigstore_go_name(base_url: &str) -> &str {
        let rest = base_url
            .split_once("://")
            .map_or(base_url, |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        match authority.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => authority,
        }
    }

    /// sigstore-js's rule (`verifySignedNote`): the key name is a substring of the `baseUrl`.
    fn sigstore_js_matches(base_url: &str, name: &str) -> bool {
        base_url.contains(name)
    }

    #[test]
    fn tlog_base_urls_name_the_checkpoint_key() {
        for (origin, host, want) in [
            (
                "artifacts.cairn.localhost",
                "127.0.0.1:7001",
                "http://artifacts.cairn.localhost:7001",
            ),
            (
                "log.example.com",
                "log.example.com",
                "http://log.example.com",
            ),
            ("log.example.com", "[::1]", "http://log.example.com"),
            (
                "log.example.com",
                "[::1]:8080",
                "http://log.example.com:8080",
            ),
        ] {
            let url = tlog_base_url("http", origin, host);
            assert_eq!(url, want);
            assert_eq!(sigstore_go_name(&url), origin);
            assert!(sigstore_js_matches(&url, origin));
        }
        // An origin with a path (older configs) is kept whole, so sigstore-js still finds it.
        let url = tlog_base_url("http", "cairn.localhost/artifacts", "127.0.0.1:7001");
        assert_eq!(url, "http://cairn.localhost/artifacts");
        assert!(sigstore_js_matches(&url, "cairn.localhost/artifacts"));
    }

    #[test]
    fn every_selector_served_is_satisfiable() {
        let valid_for = json!({ "start": "2026-01-01T00:00:00Z" });
        // Without a timestamp authority: no TSA selector at all.
        let config = signing_config("http://127.0.0.1:7001", &valid_for, Vec::new());
        check(&config);
        assert_eq!(config.get("tsaConfig"), None);
        assert_eq!(config["tsaUrls"], json!([]));
        // ... and no Rekor v2 API, whose entries need a timestamp.
        assert_eq!(config["rekorTlogUrls"].as_array().unwrap().len(), 1);
        assert_eq!(config["rekorTlogUrls"][0]["majorApiVersion"], 1);

        // With one: ANY of them.
        let tsa = json!({
            "url": "http://127.0.0.1:7001/api/v1/timestamp",
            "majorApiVersion": 1,
            "validFor": valid_for,
            "operator": OPERATOR,
        });
        let config = signing_config("http://127.0.0.1:7001", &valid_for, vec![tsa]);
        check(&config);
        assert_eq!(config["tsaConfig"], json!({ "selector": "ANY" }));
        // And the Rekor v2 API beside v1, under the same operator.
        let versions: Vec<_> = config["rekorTlogUrls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|service| {
                (
                    service["majorApiVersion"].as_u64(),
                    service["operator"].clone(),
                )
            })
            .collect();
        assert_eq!(
            versions,
            [(Some(2), json!(OPERATOR)), (Some(1), json!(OPERATOR))]
        );
    }
}
