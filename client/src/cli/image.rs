//! `cairn sign-image`, `cairn attest-image` and `cairn verify-image`: container images signed
//! by digest, with the signatures and attestations stored beside the image in its registry,
//! where cosign looks for them.
//!
//! Where they are stored depends on the registry:
//! - With the OCI 1.1 referrers API, as cosign 3 does (its `specs/BUNDLE_SPEC.md`): a manifest
//!   with `artifactType` `application/vnd.dev.sigstore.bundle.v0.3+json`, the empty config, the
//!   Sigstore bundle as its one layer and the image as its `subject`. A signature is an in-toto
//!   statement about the image with predicate type `https://sigstore.dev/cosign/sign/v1`; an
//!   attestation one with the caller's predicate; both signed as DSSE.
//! - Without it, in cosign's tag scheme (its `specs/SIGNATURE_SPEC.md`): the tag
//!   `sha256-<hex>.sig` holds one manifest with a layer per signature, each a simple-signing
//!   payload naming the image digest, signed as a hashedrekord, with the signature,
//!   certificate, chain and SET bundle in cosign's annotations; `sha256-<hex>.att` likewise
//!   holds DSSE envelopes of in-toto statements. Each layer also carries the whole Sigstore
//!   bundle (with the inclusion proof and checkpoint that cosign's annotations lack) in
//!   [`BUNDLE_ANNOTATION`], so `verify-image` checks it offline exactly as `cairn verify` does.
//!
//! `verify-image` reads all three places (the referrers API, or the referrers tag schema
//! cosign 3 falls back to, and both tags) and verifies every bundle it finds with
//! `client::verify`.

use std::path::PathBuf;

use anyhow::Context as _;
use aws_lc_rs::digest::{SHA256, digest};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use clap::Args;
use client::bundle::{BUNDLE_BYTES_MAX, Content, VerificationMaterial};
use client::certificate::SigningCertificate;
use client::{Artifact, Bundle, Policy, TrustedRoot};
use oci_client::Reference;
use serde_json::{Value, json};

use super::net::Http;
use super::registry::{OCI_MANIFEST, Registry, RegistryError, Resolved, parse_reference};
use super::sign::{BUNDLE_MEDIA_TYPE, Signer};
use crate::{Failure, ServiceArgs, input, not_verified, service};

/// The predicate type of cosign 3's image signatures.
pub(crate) const SIGN_PREDICATE_TYPE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Cosign's simple-signing payload type, and its `critical.type`.
const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
const SIMPLE_SIGNING_TYPE: &str = "cosign container image signature";
/// The media type of cosign's `.att` layers.
const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
/// Cosign's annotations on `.sig` and `.att` layers.
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
const SET_BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
/// Cairn's annotation on `.sig` and `.att` layers: the layer's whole Sigstore bundle v0.3.
pub(crate) const BUNDLE_ANNOTATION: &str = "dev.cairn/sigstore-bundle";
/// The OCI empty descriptor's content (`{}`) and media type.
const EMPTY_JSON: &[u8] = b"{}";
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// Bounds on what `verify-image` reads: signatures per place, and a simple-signing payload.
const SIGNATURES_MAX: usize = 100;
const PAYLOAD_BYTES_MAX: usize = 64 * 1024;

/// `cairn sign-image`.
#[derive(Debug, Args)]
pub(crate) struct SignImageArgs {
    /// The image: `registry/repository:tag` or `registry/repository@sha256:...`.
    #[arg(value_name = "IMAGE")]
    image: String,
    #[command(flatten)]
    service: ServiceArgs,
}

/// `cairn attest-image`.
#[derive(Debug, Args)]
pub(crate) struct AttestImageArgs {
    /// The image the statement is about (its subject).
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The predicate, a JSON file.
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// The predicate type URI (for example https://slsa.dev/provenance/v1).
    #[arg(long = "type", value_name = "URI")]
    predicate_type: String,
    #[command(flatten)]
    service: ServiceArgs,
}

/// `cairn verify-image`.
#[derive(Debug, Args)]
pub(crate) struct VerifyImageArgs {
    /// The image: `registry/repository:tag`, `...@sha256:...`, or `...:tag@sha256:...` to also
    /// require that the tag still points at that digest.
    #[arg(value_name = "IMAGE")]
    image: String,
    /// The identity that must have signed (exact SAN match: e-mail or URI).
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    cert_identity: Option<String>,
    /// The OIDC issuer that must have vouched for that identity, matched exactly.
    #[arg(
        long,
        value_name = "URL",
        required_unless_present = "key",
        conflicts_with = "key"
    )]
    cert_oidc_issuer: Option<String>,
    /// A managed key's PEM public key, instead of a certificate identity.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The Sigstore `trusted_root.json` to trust.
    #[arg(long, value_name = "FILE", env = "CAIRN_TRUST_ROOT")]
    trust_root: PathBuf,
    /// Also require every log entry's checkpoint to satisfy this C2SP tlog-policy file.
    #[arg(long, value_name = "FILE")]
    witness_policy: Option<PathBuf>,
    /// Require a verified attestation with this predicate type instead of a signature.
    #[arg(long = "type", value_name = "URI")]
    attestation_type: Option<String>,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where a signature is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    /// An OCI 1.1 referrer of the image.
    Referrer,
    /// A layer of cosign's `sha256-<hex>.sig` manifest.
    SigTag,
    /// A layer of cosign's `sha256-<hex>.att` manifest.
    AttTag,
}

/// The registry, the image and its resolved digest.
struct Image {
    registry: Registry,
    /// The image pinned to its digest.
    pinned: Reference,
    resolved: Resolved,
}

impl Image {
    fn open(text: &str) -> Result<Image, Failure> {
        let reference = parse_reference(text).map_err(input)?;
        let registry = Registry::new(&reference).map_err(input)?;
        let resolved = registry.resolve(&reference).map_err(registry_failure)?;
        let pinned = Reference::with_digest(
            reference.registry().to_owned(),
            reference.repository().to_owned(),
            resolved.digest.clone(),
        );
        Ok(Image {
            registry,
            pinned,
            resolved,
        })
    }

    /// `registry/repository`, as cosign writes it in `docker-reference`.
    fn repository(&self) -> String {
        format!("{}/{}", self.pinned.registry(), self.pinned.repository())
    }

    /// `registry/repository@sha256:...`.
    fn name(&self) -> String {
        format!("{}@{}", self.repository(), self.resolved.digest)
    }

    /// Cosign's tag for `suffix` (`sig`, `att`) of this digest.
    fn cosign_tag(&self, suffix: &str) -> Reference {
        Reference::with_tag(
            self.pinned.registry().to_owned(),
            self.pinned.repository().to_owned(),
            format!("{}.{suffix}", self.resolved.digest.replace(':', "-")),
        )
    }
}

/// A registry failure's exit code: a digest mismatch is a verdict (1), the rest are the
/// service's (5).
fn registry_failure(error: RegistryError) -> Failure {
    match error {
        RegistryError::DigestMismatch(_) => not_verified(error),
        _ => service(error),
    }
}

/// Images are logged through the Rekor v1 API whatever the signing config offers: cosign's
/// tag-based signatures carry the entry's signed entry timestamp, which only v1 entries have.
fn v1_route(url: &str) -> super::sign::LogRoute {
    super::sign::LogRoute::V1 {
        url: url.trim_end_matches('/').to_owned(),
    }
}

/// `cairn sign-image IMAGE`.
pub(crate) fn sign_image(args: &SignImageArgs) -> Result<(), Failure> {
    let image = Image::open(&args.image)?;
    let http = Http::new().map_err(service)?;
    let signer = crate::signer(&http, &args.service)?;
    let referrers = image
        .registry
        .supports_referrers(&image.pinned, &image.resolved.digest)
        .map_err(registry_failure)?;
    let (bundle, stored) = if referrers {
        let bundle = signer
            .attest_subject(
                &http,
                &v1_route(&args.service.url),
                &image.repository(),
                &image.resolved.sha256,
                SIGN_PREDICATE_TYPE,
                &json!({}),
            )
            .map_err(service)?;
        let stored = attach_referrer(&image, &bundle, SIGN_PREDICATE_TYPE)?;
        (bundle, stored)
    } else {
        let payload = simple_signing_payload(&image);
        let bundle = signer
            .sign_digest(
                &http,
                &v1_route(&args.service.url),
                &digest(&SHA256, &payload),
            )
            .map_err(service)?;
        let signature = bundle["messageSignature"]["signature"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let mut annotations = cosign_annotations(&signer, &bundle)?;
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), json!(signature));
        let stored = attach_to_tag(&image, "sig", SIMPLE_SIGNING, payload, annotations)?;
        (bundle, stored)
    };
    report(
        &signer,
        &image,
        &bundle,
        &stored,
        "signed",
        args.service.json,
    );
    Ok(())
}

/// `cairn attest-image IMAGE --predicate P --type T`.
pub(crate) fn attest_image(args: &AttestImageArgs) -> Result<(), Failure> {
    let predicate = crate::read_bounded(&args.predicate, 16 * 1024 * 1024).map_err(input)?;
    let predicate: Value = serde_json::from_slice(&predicate)
        .with_context(|| format!("predicate {}", args.predicate.display()))
        .map_err(input)?;
    let image = Image::open(&args.image)?;
    let http = Http::new().map_err(service)?;
    let signer = crate::signer(&http, &args.service)?;
    let referrers = image
        .registry
        .supports_referrers(&image.pinned, &image.resolved.digest)
        .map_err(registry_failure)?;
    let bundle = signer
        .attest_subject(
            &http,
            &v1_route(&args.service.url),
            &image.repository(),
            &image.resolved.sha256,
            &args.predicate_type,
            &predicate,
        )
        .map_err(service)?;
    let stored = if referrers {
        attach_referrer(&image, &bundle, &args.predicate_type)?
    } else {
        let envelope = serde_json::to_vec(&bundle["dsseEnvelope"]).map_err(input)?;
        let mut annotations = cosign_annotations(&signer, &bundle)?;
        // Cosign's `.att` layers carry an empty signature annotation: the signature is in the
        // envelope.
        annotations.insert(SIGNATURE_ANNOTATION.to_owned(), json!(""));
        annotations.insert("predicateType".to_owned(), json!(args.predicate_type));
        attach_to_tag(&image, "att", DSSE_ENVELOPE, envelope, annotations)?
    };
    report(
        &signer,
        &image,
        &bundle,
        &stored,
        "attested",
        args.service.json,
    );
    Ok(())
}

fn report(signer: &Signer, image: &Image, bundle: &Value, stored: &str, verb: &str, json: bool) {
    let log_index = &bundle["verificationMaterial"]["tlogEntries"][0]["logIndex"];
    if json {
        let output = json!({
            "image": image.name(),
            "digest": image.resolved.digest,
            "identity": signer.identity,
            "issuer": signer.issuer,
            "log_index": log_index,
            "stored": stored,
        });
        println!("{output}");
    } else {
        println!(
            "{verb} {} as {}: log entry {}, stored as {stored}",
            image.name(),
            signer.identity,
            log_index.as_str().unwrap_or("?"),
        );
    }
}

/// Cosign's simple-signing payload for the image (what a `.sig` layer signs).
fn simple_signing_payload(image: &Image) -> Vec<u8> {
    let payload = json!({
        "critical": {
            "identity": { "docker-reference": image.repository() },
            "image": { "docker-manifest-digest": image.resolved.digest },
            "type": SIMPLE_SIGNING_TYPE,
        },
        "optional": null,
    });
    // Serializing a `Value` built from strings cannot fail.
    serde_json::to_vec(&payload).unwrap_or_default()
}

/// The annotations cosign puts on a `.sig` or `.att` layer (certificate, chain, SET bundle),
/// and Cairn's whole bundle.
fn cosign_annotations(
    signer: &Signer,
    bundle: &Value,
) -> Result<serde_json::Map<String, Value>, Failure> {
    let mut annotations = serde_json::Map::new();
    if let Some(certificate) = signer.certificate_pem() {
        annotations.insert(CERTIFICATE_ANNOTATION.to_owned(), json!(certificate));
        annotations.insert(CHAIN_ANNOTATION.to_owned(), json!(signer.chain_pem));
    }
    // Cosign's "bundle": the log entry and its SET (what cosign verifies offline).
    let entry = &bundle["verificationMaterial"]["tlogEntries"][0];
    let number = |value: &Value| value.as_str().and_then(|text| text.parse::<u64>().ok());
    let log_id = entry["logId"]["keyId"]
        .as_str()
        .and_then(|id| BASE64.decode(id).ok())
        .map(hex::encode);
    if let (Some(set), Some(index), Some(time), Some(log_id)) = (
        entry["inclusionPromise"]["signedEntryTimestamp"].as_str(),
        number(&entry["logIndex"]),
        number(&entry["integratedTime"]),
        log_id,
    ) {
        let set_bundle = json!({
            "SignedEntryTimestamp": set,
            "Payload": {
                "body": entry["canonicalizedBody"],
                "integratedTime": time,
                "logIndex": index,
                "logID": log_id,
            },
        });
        annotations.insert(
            SET_BUNDLE_ANNOTATION.to_owned(),
            json!(set_bundle.to_string()),
        );
    }
    annotations.insert(BUNDLE_ANNOTATION.to_owned(), json!(bundle.to_string()));
    Ok(annotations)
}

/// Stores `bundle` as an OCI 1.1 referrer of the image; returns what to call it.
fn attach_referrer(image: &Image, bundle: &Value, predicate_type: &str) -> Result<String, Failure> {
    let registry = &image.registry;
    let bundle_bytes = serde_json::to_vec(bundle).map_err(input)?;
    let bundle_size = bundle_bytes.len();
    let config_digest = registry
        .push_blob(&image.pinned, EMPTY_JSON.to_vec())
        .map_err(registry_failure)?;
    let bundle_digest = registry
        .push_blob(&image.pinned, bundle_bytes)
        .map_err(registry_failure)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": { "mediaType": EMPTY_MEDIA_TYPE, "digest": config_digest, "size": EMPTY_JSON.len() },
        "layers": [{
            "mediaType": BUNDLE_MEDIA_TYPE,
            "digest": bundle_digest,
            "size": bundle_size,
            "annotations": {
                "org.opencontainers.image.title":
                    format!("{}.sigstore.json", bundle_digest.replace(':', "-")),
            },
        }],
        "subject": {
            "mediaType": image.resolved.media_type,
            "digest": image.resolved.digest,
            "size": image.resolved.size,
        },
        "annotations": {
            "dev.sigstore.bundle.content": "dsse-envelope",
            "dev.sigstore.bundle.predicateType": predicate_type,
        },
    });
    let bytes = serde_json::to_vec(&manifest).map_err(input)?;
    let manifest_digest = format!("sha256:{}", hex::encode(digest(&SHA256, &bytes)));
    let at = image.pinned.clone_with_digest(manifest_digest.clone());
    registry
        .push_manifest(&at, bytes, OCI_MANIFEST)
        .map_err(registry_failure)?;
    Ok(format!("referrer {manifest_digest}"))
}

/// Adds a layer to cosign's `sha256-<hex>.<suffix>` manifest (made if missing); returns the
/// tag. Two signers writing at once can lose one layer, as with cosign itself: the registry
/// has no compare-and-swap on tags.
fn attach_to_tag(
    image: &Image,
    suffix: &str,
    media_type: &str,
    blob: Vec<u8>,
    annotations: serde_json::Map<String, Value>,
) -> Result<String, Failure> {
    let registry = &image.registry;
    let tag = image.cosign_tag(suffix);
    let mut layers = match registry
        .manifest(&tag, &[OCI_MANIFEST])
        .map_err(registry_failure)?
    {
        Some((bytes, _)) => {
            let manifest: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("the manifest at {}", tag.whole()))
                .map_err(not_verified)?;
            manifest["layers"].as_array().cloned().unwrap_or_default()
        }
        None => Vec::new(),
    };
    if layers.len() >= SIGNATURES_MAX {
        return Err(service(anyhow::anyhow!(
            "{} already holds {SIGNATURES_MAX} layers",
            tag.whole()
        )));
    }
    let size = blob.len();
    let blob_digest = registry.push_blob(&tag, blob).map_err(registry_failure)?;
    layers.push(json!({
        "mediaType": media_type,
        "size": size,
        "digest": blob_digest,
        "annotations": Value::Object(annotations),
    }));
    // Cosign's config for these manifests: an image config whose rootfs lists the layers.
    let diff_ids: Vec<&Value> = layers.iter().map(|layer| &layer["digest"]).collect();
    let config = serde_json::to_vec(&json!({
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{ "created": "0001-01-01T00:00:00Z" }],
        "os": "",
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "config": {},
    }))
    .map_err(input)?;
    let config_size = config.len();
    let config_digest = registry.push_blob(&tag, config).map_err(registry_failure)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "size": config_size,
            "digest": config_digest,
        },
        "layers": layers,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(input)?;
    registry
        .push_manifest(&tag, bytes, OCI_MANIFEST)
        .map_err(registry_failure)?;
    Ok(format!("tag {}", tag.tag().unwrap_or_default()))
}

/// One signature or attestation found beside the image.
struct Found {
    scheme: Scheme,
    /// Where exactly (a manifest digest, or a tag and layer).
    place: String,
    /// The bundle, or why there is none to check.
    bundle: Result<Vec<u8>, String>,
    /// A `.sig` layer's simple-signing payload (what its bundle signs).
    payload: Option<Vec<u8>>,
}

/// The outcome for one signature.
struct Checked {
    place: String,
    scheme: Scheme,
    /// `None` for a plain signature, else the attestation's predicate type.
    predicate_type: Option<String>,
    /// The signer the certificate names (`None` for a managed key, or no certificate).
    signer: Option<(String, String)>,
    log_indices: Vec<u64>,
    /// `Ok` if it verified under the policy; else why not.
    outcome: Result<(), String>,
    /// Verified, but for another identity than the policy's.
    other_identity: bool,
}

/// `cairn verify-image IMAGE ...`.
pub(crate) fn verify_image(args: &VerifyImageArgs) -> Result<(), Failure> {
    let policy = crate::policy(
        args.key.as_deref(),
        args.cert_identity.as_deref(),
        args.cert_oidc_issuer.as_deref(),
    )?;
    let root = crate::read_trusted_root(&args.trust_root)?;
    let witnesses = match &args.witness_policy {
        Some(path) => Some(crate::read_witness_policy(path)?),
        None => None,
    };
    let image = Image::open(&args.image)?;
    let found = find(&image).map_err(registry_failure)?;
    let checked: Vec<Checked> = found
        .into_iter()
        .map(|found| check(&found, &image, &root, &policy, witnesses.as_ref()))
        .collect();
    let wanted = |one: &Checked| one.predicate_type.as_deref() == args.attestation_type.as_deref();
    let verified = checked.iter().any(|one| wanted(one) && one.outcome.is_ok());
    let what = match &args.attestation_type {
        Some(kind) => format!("attestation of type {kind}"),
        None => "signature".to_owned(),
    };
    let failure = if verified {
        None
    } else if !checked.iter().any(wanted) {
        Some(format!("no {what} is attached to {}", image.name()))
    } else {
        let others: Vec<String> = checked
            .iter()
            .filter(|one| wanted(one) && one.other_identity)
            .filter_map(|one| one.signer.as_ref())
            .map(|(identity, issuer)| format!("{identity} ({issuer})"))
            .collect();
        if others.is_empty() {
            Some(format!("no {what} on {} verified", image.name()))
        } else {
            Some(format!(
                "no {what} on {} by the required identity: signed only by {}",
                image.name(),
                others.join(", ")
            ))
        }
    };
    if args.json {
        let entries: Vec<Value> = checked
            .iter()
            .map(|one| {
                json!({
                    "kind": if one.predicate_type.is_some() { "attestation" } else { "signature" },
                    "predicate_type": one.predicate_type,
                    "stored": match one.scheme {
                        Scheme::Referrer => "referrer",
                        Scheme::SigTag => "sig-tag",
                        Scheme::AttTag => "att-tag",
                    },
                    "place": one.place,
                    "identity": one.signer.as_ref().map(|signer| &signer.0),
                    "issuer": one.signer.as_ref().map(|signer| &signer.1),
                    "verified": one.outcome.is_ok(),
                    "other_identity": one.other_identity,
                    "error": one.outcome.as_ref().err(),
                    "log_indices": one.log_indices,
                })
            })
            .collect();
        let output = json!({
            "verified": failure.is_none(),
            "image": image.name(),
            "digest": image.resolved.digest,
            "signatures": entries,
            "error": failure,
        });
        println!("{output}");
    } else {
        for one in &checked {
            let kind = match &one.predicate_type {
                Some(kind) => format!("attestation {kind}"),
                None => "signature".to_owned(),
            };
            let by = match &one.signer {
                Some((identity, issuer)) => format!(" by {identity} ({issuer})"),
                None => String::new(),
            };
            match &one.outcome {
                Ok(()) => println!(
                    "OK: {kind}{by} on {}, log entry {} [{}]",
                    image.name(),
                    join(&one.log_indices),
                    one.place
                ),
                Err(error) => println!("FAILED: {kind}{by} [{}]: {error}", one.place),
            }
        }
    }
    match failure {
        None => Ok(()),
        // With --json the failure is in the object already; main prints it once more there.
        Some(failure) => Err(not_verified(anyhow::anyhow!(failure))),
    }
}

fn join(numbers: &[u64]) -> String {
    numbers
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every signature and attestation stored beside the image, in all three places.
fn find(image: &Image) -> Result<Vec<Found>, RegistryError> {
    let registry = &image.registry;
    let mut found = Vec::new();
    let referrers = registry.referrers(&image.pinned, BUNDLE_MEDIA_TYPE)?;
    for manifest_digest in referrers.into_iter().take(SIGNATURES_MAX) {
        let at = image.pinned.clone_with_digest(manifest_digest.clone());
        let bundle = match registry.manifest(&at, &[super::registry::OCI_MANIFEST])? {
            None => Err("the referrer's manifest is missing".to_owned()),
            Some((bytes, _)) => {
                let manifest: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let layer = manifest["layers"]
                    .as_array()
                    .and_then(|layers| {
                        layers
                            .iter()
                            .find(|layer| layer["mediaType"] == BUNDLE_MEDIA_TYPE)
                    })
                    .and_then(|layer| layer["digest"].as_str());
                match layer {
                    Some(layer) => Ok(registry.blob(&at, layer, BUNDLE_BYTES_MAX)?),
                    None => Err("the referrer has no Sigstore bundle layer".to_owned()),
                }
            }
        };
        found.push(Found {
            scheme: Scheme::Referrer,
            place: format!("referrer {manifest_digest}"),
            bundle,
            payload: None,
        });
    }
    for (suffix, scheme) in [("sig", Scheme::SigTag), ("att", Scheme::AttTag)] {
        let tag = image.cosign_tag(suffix);
        let Some((bytes, _)) = registry.manifest(&tag, &[OCI_MANIFEST])? else {
            continue;
        };
        let manifest: Value = serde_json::from_slice(&bytes)
            .map_err(|error| RegistryError::Other(format!("{}: {error}", tag.whole())))?;
        let layers = manifest["layers"].as_array().cloned().unwrap_or_default();
        for (position, layer) in layers.iter().take(SIGNATURES_MAX).enumerate() {
            let place = format!("tag {} layer {position}", tag.tag().unwrap_or_default());
            let bundle = layer["annotations"][BUNDLE_ANNOTATION]
                .as_str()
                .map(|text| text.as_bytes().to_vec())
                .ok_or_else(|| {
                    "a cosign signature without a Sigstore bundle (no inclusion proof): \
                     cairn cannot verify it offline"
                        .to_owned()
                });
            let payload = match (scheme, layer["digest"].as_str()) {
                (Scheme::SigTag, Some(payload_digest)) if bundle.is_ok() => {
                    Some(registry.blob(&tag, payload_digest, PAYLOAD_BYTES_MAX)?)
                }
                _ => None,
            };
            found.push(Found {
                scheme,
                place,
                bundle,
                payload,
            });
        }
    }
    Ok(found)
}

/// Verifies one signature as `cairn verify` does, for the image's digest.
fn check(
    found: &Found,
    image: &Image,
    root: &TrustedRoot,
    policy: &Policy,
    witnesses: Option<&tlog::policy::Policy>,
) -> Checked {
    let mut checked = Checked {
        place: found.place.clone(),
        scheme: found.scheme,
        predicate_type: None,
        signer: None,
        log_indices: Vec::new(),
        outcome: Ok(()),
        other_identity: false,
    };
    let bundle = match &found.bundle {
        Ok(bytes) => Bundle::from_json(bytes).map_err(|error| format!("bundle: {error}")),
        Err(error) => Err(error.clone()),
    };
    let bundle = match bundle {
        Ok(bundle) => bundle,
        Err(error) => {
            checked.outcome = Err(error);
            return checked;
        }
    };
    if let VerificationMaterial::Certificate(der) = &bundle.material
        && let Ok(certificate) = SigningCertificate::parse(der)
    {
        checked.signer = Some((
            certificate
                .identities()
                .into_iter()
                .next()
                .unwrap_or_default(),
            certificate.oidc_issuer().unwrap_or_default(),
        ));
    }
    // What was signed must name this image's digest; say so plainly when it names another.
    let (artifact, named) = match (&bundle.content, &found.payload) {
        (Content::Dsse(envelope), _) => {
            let statement: Value = serde_json::from_slice(&envelope.payload).unwrap_or(Value::Null);
            let kind = statement["predicateType"].as_str().unwrap_or_default();
            if kind != SIGN_PREDICATE_TYPE {
                checked.predicate_type = Some(kind.to_owned());
            }
            let named: Vec<String> = statement["subject"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|subject| subject["digest"]["sha256"].as_str())
                .map(|hex| format!("sha256:{hex}"))
                .collect();
            (Artifact::from_sha256(image.resolved.sha256), named)
        }
        (_, Some(payload)) => {
            let claims: Value = serde_json::from_slice(payload).unwrap_or(Value::Null);
            if claims["critical"]["type"] != SIMPLE_SIGNING_TYPE {
                checked.outcome = Err("the payload is not a cosign simple-signing payload".into());
                return checked;
            }
            let named = claims["critical"]["image"]["docker-manifest-digest"]
                .as_str()
                .map(str::to_owned)
                .into_iter()
                .collect();
            (Artifact::from_bytes(payload), named)
        }
        // A message signature stored as a referrer signs the image manifest itself.
        (_, None) => (
            Artifact::from_sha256(image.resolved.sha256),
            vec![image.resolved.digest.clone()],
        ),
    };
    if !named.contains(&image.resolved.digest) {
        checked.outcome = Err(format!(
            "digest mismatch: it is for {}, not {}",
            if named.is_empty() {
                "no digest".to_owned()
            } else {
                named.join(", ")
            },
            image.resolved.digest
        ));
        return checked;
    }
    match client::verify::verify(&bundle, root, &artifact, policy) {
        Ok(verified) => {
            checked.log_indices = verified.log_indices;
            if let Some(witnesses) = witnesses
                && let Err(error) = client::witnessed::check_bundle(&bundle, witnesses)
            {
                checked.outcome = Err(format!("witness policy: {error}"));
            }
        }
        Err(error) => {
            // Signed, validly, by someone else? Say who, rather than only "wrong identity".
            if let (Policy::Identity { .. }, Some((identity, issuer))) = (policy, &checked.signer) {
                let theirs = Policy::Identity {
                    identity: identity.clone(),
                    issuer: issuer.clone(),
                };
                if let Ok(verified) = client::verify::verify(&bundle, root, &artifact, &theirs) {
                    checked.log_indices = verified.log_indices;
                    checked.other_identity = true;
                    checked.outcome =
                        Err(format!("signed by another identity, {identity} ({issuer})"));
                    return checked;
                }
            }
            checked.outcome = Err(error.to_string());
        }
    }
    checked
}
