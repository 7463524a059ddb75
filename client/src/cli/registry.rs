//! The OCI registry side of `sign-image`, `attest-image` and `verify-image`: the ORAS project's
//! `oci-client` (manifests, blobs, token auth, the referrers API with its tag-schema fallback)
//! on a current-thread runtime, credentials from Docker's config file, plain HTTP only for a
//! loopback registry. Every manifest and blob read is bounded and checked against its digest.
//!
//! One request is ours rather than oci-client's: the probe for the OCI 1.1 referrers API.
//! oci-client's `pull_referrers` folds "the registry has no referrers API" into its tag-schema
//! fallback, but a signer must know which it has, to store where cosign will look.

use std::time::Duration;

use anyhow::{Context as _, bail};
use aws_lc_rs::digest::{SHA256, digest};
use futures_util::TryStreamExt as _;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::{Reference, RegistryOperation};

use super::net::Http;

/// OCI image manifest.
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// The manifest types an image reference may resolve to.
const MANIFEST_TYPES: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];
/// The largest manifest read (the OCI distribution spec's recommended limit).
const MANIFEST_BYTES_MAX: usize = 4 << 20;
/// Longest one registry request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a registry request failed, for the messages the commands print.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    /// The registry answered that the manifest or repository does not exist.
    #[error("image not found: {0}")]
    NotFound(String),
    /// No connection to the registry.
    #[error("registry {registry} is unreachable: {detail}")]
    Unreachable { registry: String, detail: String },
    /// A digest the registry sent does not match the content, or the one asked for.
    #[error("digest mismatch: {0}")]
    DigestMismatch(String),
    /// Anything else the registry or the transport said.
    #[error("{0}")]
    Other(String),
}

/// An image manifest resolved to its digest.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    /// `sha256:<hex>` of the manifest bytes, computed here.
    pub(crate) digest: String,
    /// The SHA-256 itself.
    pub(crate) sha256: [u8; 32],
    /// The manifest's media type.
    pub(crate) media_type: String,
    /// The manifest's size in bytes.
    pub(crate) size: usize,
}

/// A client for one registry.
pub(crate) struct Registry {
    runtime: tokio::runtime::Runtime,
    client: oci_client::Client,
    auth: RegistryAuth,
    /// `host[:port]` as in the reference.
    host: String,
    /// `http` for a loopback registry, else `https`.
    scheme: &'static str,
    /// Whether a pull, and a push, token was asked for: oci-client sends only tokens it
    /// holds, so the first request of each kind asks (every command stays in one repository).
    authorized: std::cell::Cell<(bool, bool)>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

/// Parses an image reference (`registry/repository[:tag][@sha256:...]`).
pub(crate) fn parse_reference(text: &str) -> anyhow::Result<Reference> {
    text.parse::<Reference>()
        .map_err(|error| anyhow::anyhow!("{text:?} is not an image reference: {error}"))
}

/// Whether `host` (`name[:port]`) is on this machine: only then is plain HTTP used.
pub(crate) fn is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

impl Registry {
    /// A client for the registry of `reference`, with the credentials Docker's config file has
    /// for it (anonymous when it has none).
    pub(crate) fn new(reference: &Reference) -> anyhow::Result<Registry> {
        let host = reference.resolve_registry().to_owned();
        let loopback = is_loopback(&host);
        let config = ClientConfig {
            protocol: if loopback {
                ClientProtocol::HttpsExcept(vec![host.clone()])
            } else {
                ClientProtocol::Https
            },
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(REQUEST_TIMEOUT),
            ..ClientConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the registry client's runtime")?;
        Ok(Registry {
            runtime,
            client: oci_client::Client::new(config),
            auth: docker_auth(&host)?,
            scheme: if loopback { "http" } else { "https" },
            host,
            authorized: std::cell::Cell::new((false, false)),
        })
    }

    /// Gets a token for `operation` on `reference`'s repository the first time (a registry
    /// without token auth answers without a challenge, and nothing is asked); returns it.
    fn authorize(
        &self,
        reference: &Reference,
        operation: RegistryOperation,
    ) -> Result<Option<String>, RegistryError> {
        let (pull, push) = self.authorized.get();
        let done = match operation {
            RegistryOperation::Pull => pull,
            RegistryOperation::Push => push,
        };
        if done {
            return Ok(None);
        }
        let token = self
            .run(self.client.auth(reference, &self.auth, operation))
            .map_err(|error| self.describe(&error))?;
        self.authorized.set(match operation {
            RegistryOperation::Pull => (true, push),
            RegistryOperation::Push => (pull, true),
        });
        Ok(token)
    }

    /// Resolves `reference` to its manifest's digest. A reference that names a digest must
    /// resolve to that digest; one that names a tag and a digest too must have the tag still
    /// pointing at that digest (a moved tag is a digest mismatch).
    pub(crate) fn resolve(&self, reference: &Reference) -> Result<Resolved, RegistryError> {
        // Fetched by tag when there is one, so a moved tag shows.
        let by_tag = match reference.tag() {
            Some(tag) => Reference::with_tag(
                reference.registry().to_owned(),
                reference.repository().to_owned(),
                tag.to_owned(),
            ),
            None => reference.clone(),
        };
        let (manifest, _) = self
            .manifest(&by_tag, &MANIFEST_TYPES)?
            .ok_or_else(|| RegistryError::NotFound(reference.whole()))?;
        let sha256: [u8; 32] = digest(&SHA256, &manifest)
            .as_ref()
            .try_into()
            .map_err(|_| RegistryError::Other("SHA-256 is not 32 bytes".to_owned()))?;
        let resolved = Resolved {
            digest: format!("sha256:{}", hex::encode(sha256)),
            sha256,
            media_type: media_type(&manifest),
            size: manifest.len(),
        };
        if let Some(wanted) = reference.digest()
            && wanted != resolved.digest
        {
            return Err(RegistryError::DigestMismatch(match reference.tag() {
                Some(tag) => format!(
                    "tag {tag} of {} now points to {}, not {wanted}",
                    reference.repository(),
                    resolved.digest
                ),
                None => format!(
                    "the registry's manifest for {wanted} hashes to {}",
                    resolved.digest
                ),
            }));
        }
        Ok(resolved)
    }

    /// The manifest `reference` names, with its media type, or `None` if there is none.
    pub(crate) fn manifest(
        &self,
        reference: &Reference,
        accept: &[&str],
    ) -> Result<Option<(Vec<u8>, String)>, RegistryError> {
        self.authorize(reference, RegistryOperation::Pull)?;
        let pulled = self.run(self.client.pull_manifest_raw(reference, &self.auth, accept));
        let (bytes, _) = match pulled {
            Ok(pulled) => pulled,
            Err(error) if is_not_found(&error) => return Ok(None),
            Err(error) => return Err(self.describe(&error)),
        };
        if bytes.len() > MANIFEST_BYTES_MAX {
            return Err(RegistryError::Other(format!(
                "the manifest of {} is larger than {MANIFEST_BYTES_MAX} bytes",
                reference.whole()
            )));
        }
        // A manifest fetched by digest must hash to it (oci-client checks a digest header
        // only when the registry sends one).
        if let Some(wanted) = reference.digest() {
            let got = format!("sha256:{}", hex::encode(digest(&SHA256, &bytes)));
            if got != wanted {
                return Err(RegistryError::DigestMismatch(format!(
                    "the registry's manifest for {wanted} hashes to {got}"
                )));
            }
        }
        let kind = media_type(&bytes);
        Ok(Some((bytes.to_vec(), kind)))
    }

    /// The blob `blob_digest` of `reference`'s repository, at most `max` bytes, checked
    /// against its digest.
    pub(crate) fn blob(
        &self,
        reference: &Reference,
        blob_digest: &str,
        max: usize,
    ) -> Result<Vec<u8>, RegistryError> {
        self.authorize(reference, RegistryOperation::Pull)?;
        let bytes = self.run(async {
            let mut stream = self.client.pull_blob_stream(reference, blob_digest).await?;
            if stream
                .content_length
                .is_some_and(|length| length > u64::try_from(max).unwrap_or(u64::MAX))
            {
                return Ok(None);
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = stream.stream.try_next().await? {
                bytes.extend_from_slice(&chunk);
                if bytes.len() > max {
                    return Ok(None);
                }
            }
            Ok(Some(bytes))
        });
        let bytes = match bytes {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                return Err(RegistryError::Other(format!(
                    "blob {blob_digest} is larger than {max} bytes"
                )));
            }
            Err(error) => return Err(self.describe(&error)),
        };
        let got = format!("sha256:{}", hex::encode(digest(&SHA256, &bytes)));
        if got != blob_digest {
            return Err(RegistryError::DigestMismatch(format!(
                "blob {blob_digest} hashes to {got}"
            )));
        }
        Ok(bytes)
    }

    /// Uploads a blob to `reference`'s repository; returns its digest.
    pub(crate) fn push_blob(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
    ) -> Result<String, RegistryError> {
        let blob_digest = format!("sha256:{}", hex::encode(digest(&SHA256, &bytes)));
        self.authorize(reference, RegistryOperation::Push)?;
        self.run(self.client.push_blob(reference, bytes, &blob_digest))
            .map_err(|error| self.describe(&error))?;
        Ok(blob_digest)
    }

    /// Uploads a manifest under `reference` (a tag, or its own digest).
    pub(crate) fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Vec<u8>,
        kind: &str,
    ) -> Result<(), RegistryError> {
        let content_type = kind
            .parse()
            .map_err(|_| RegistryError::Other(format!("bad media type {kind}")))?;
        self.authorize(reference, RegistryOperation::Push)?;
        self.run(
            self.client
                .push_manifest_raw(reference, bytes, content_type),
        )
        .map_err(|error| self.describe(&error))?;
        Ok(())
    }

    /// Whether the registry serves the OCI 1.1 referrers API for `repository`: a
    /// `GET /v2/<name>/referrers/<digest>` answered with an image index (a registry without it
    /// answers 404, the spec's signal to use the tag schema).
    pub(crate) fn supports_referrers(
        &self,
        reference: &Reference,
        image_digest: &str,
    ) -> Result<bool, RegistryError> {
        // Asked afresh: the token itself is needed here, not only oci-client's cache of it.
        self.authorized.set((false, self.authorized.get().1));
        let token = self.authorize(reference, RegistryOperation::Pull)?;
        let mut headers = vec![("accept", OCI_INDEX.to_owned())];
        match (&token, &self.auth) {
            (Some(token), _) => headers.push(("authorization", format!("Bearer {token}"))),
            (None, RegistryAuth::Basic(user, password)) => {
                use base64::Engine as _;
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                headers.push(("authorization", format!("Basic {pair}")));
            }
            _ => {}
        }
        let url = format!(
            "{}://{}/v2/{}/referrers/{image_digest}",
            self.scheme,
            self.host,
            reference.repository()
        );
        let http = Http::new().map_err(|error| RegistryError::Other(format!("{error:#}")))?;
        let answer = http
            .send(hyper::Method::GET, &url, &headers, Vec::new(), &[404])
            .map_err(|error| RegistryError::Other(format!("{error:#}")))?;
        if answer.status == 404 {
            return Ok(false);
        }
        // Some registries answer unknown routes with 200 and something else: only an index
        // counts.
        Ok(serde_json::from_slice::<serde_json::Value>(&answer.body)
            .is_ok_and(|index| index["manifests"].is_array()))
    }

    /// The digests of the manifests attached to `reference` (which names a digest) with
    /// `artifact_type`: from the referrers API, or else from the OCI referrers tag schema
    /// (`sha256-<hex>`, an index cosign keeps on registries without the API).
    pub(crate) fn referrers(
        &self,
        reference: &Reference,
        artifact_type: &str,
    ) -> Result<Vec<String>, RegistryError> {
        self.authorize(reference, RegistryOperation::Pull)?;
        let index = match self.run(self.client.pull_referrers(reference, Some(artifact_type))) {
            Ok(index) => index,
            Err(error) if is_not_found(&error) => return Ok(Vec::new()),
            Err(error) => return Err(self.describe(&error)),
        };
        Ok(index
            .manifests
            .into_iter()
            .map(|entry| entry.digest)
            .collect())
    }

    fn run<T>(
        &self,
        future: impl Future<Output = Result<T, OciDistributionError>>,
    ) -> Result<T, OciDistributionError> {
        self.runtime.block_on(async {
            tokio::time::timeout(REQUEST_TIMEOUT * 2, future)
                .await
                .unwrap_or_else(|_| {
                    Err(OciDistributionError::GenericError(Some(format!(
                        "no answer within {:?}",
                        REQUEST_TIMEOUT * 2
                    ))))
                })
        })
    }

    fn describe(&self, error: &OciDistributionError) -> RegistryError {
        if is_not_found(error) {
            return RegistryError::NotFound(error.to_string());
        }
        if let OciDistributionError::RequestError(request) = error
            && (request.is_connect() || request.is_timeout())
        {
            // The source chain says why (refused, no route, TLS).
            let mut detail = request.to_string();
            let mut source = std::error::Error::source(request);
            while let Some(cause) = source {
                detail = format!("{detail}: {cause}");
                source = cause.source();
            }
            return RegistryError::Unreachable {
                registry: self.host.clone(),
                detail,
            };
        }
        RegistryError::Other(error.to_string())
    }
}

/// Whether the registry said "no such manifest or repository".
fn is_not_found(error: &OciDistributionError) -> bool {
    match error {
        OciDistributionError::ImageManifestNotFoundError(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 404,
        OciDistributionError::RegistryError { envelope, .. } => {
            envelope.errors.iter().any(|error| {
                matches!(
                    error.code,
                    OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown
                )
            })
        }
        _ => false,
    }
}

/// The `mediaType` a manifest declares (Docker schema 2 and OCI manifests carry one; an OCI
/// manifest may omit it).
fn media_type(manifest: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(manifest)
        .ok()
        .and_then(|value| value["mediaType"].as_str().map(str::to_owned))
        .unwrap_or_else(|| OCI_MANIFEST.to_owned())
}

/// The credentials Docker's config file (`$DOCKER_CONFIG/config.json`, else
/// `~/.docker/config.json`, with its credential helpers) has for `host`; anonymous if none.
fn docker_auth(host: &str) -> anyhow::Result<RegistryAuth> {
    use docker_credential::{CredentialRetrievalError, DockerCredential};
    // Docker keys Docker Hub by its v1 index URL.
    let key = if host == "docker.io" || host == "index.docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    match docker_credential::get_credential(key) {
        Ok(DockerCredential::UsernamePassword(user, password)) => {
            Ok(RegistryAuth::Basic(user, password))
        }
        Ok(DockerCredential::IdentityToken(_)) => bail!(
            "Docker's config has an identity token for {host}, which cairn cannot use yet: \
             log in with a username and password (or a personal access token)"
        ),
        Err(
            CredentialRetrievalError::ConfigNotFound
            | CredentialRetrievalError::ConfigReadError
            | CredentialRetrievalError::NoCredentialConfigured,
        ) => Ok(RegistryAuth::Anonymous),
        Err(error) => Err(anyhow::anyhow!("{error}"))
            .with_context(|| format!("reading Docker's credentials for {host}")),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_hosts_get_plain_http() {
        for host in [
            "localhost:5000",
            "127.0.0.1:5000",
            "127.1.2.3",
            "[::1]:5000",
            "localhost",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "registry.example:5000",
            "10.0.0.1:5000",
            "docker.io",
            "localhost.evil.com",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
