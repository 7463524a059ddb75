//! `cairn login`, `cairn sign`, `cairn attest` and `cairn trust`: keyless signing against a
//! Cairn deployment, the way Sigstore clients do it.
//!
//! Signing: an ephemeral ECDSA P-256 key (never written anywhere), a ten-minute certificate for
//! it from the CA (`POST /api/v2/signingCert`, public key plus proof of possession: the key's
//! signature over the token's identity claim), the signature, a log entry answered with its
//! inclusion proof and signed checkpoint, and a Sigstore bundle v0.3 holding all of it, so
//! that `cairn verify` (or any Sigstore verifier) can check it offline.
//!
//! Which log API, as the deployment's signing config says ([`LogRoute::resolve`]): when it
//! offers the Rekor v2 API and a timestamp authority, a v2 entry (hashedrekord 0.0.2, for an
//! attestation over the digest of the envelope's PAE, as Rekor v2 logs envelopes) and an
//! RFC 3161 timestamp of the signature from the TSA, the only signed time a v2 entry
//! has; otherwise a Rekor v1 entry (hashedrekord or dsse 0.0.1) with its signed entry
//! timestamp.

use std::fs::File;
use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use aws_lc_rs::digest::{Context as DigestContext, SHA256};
use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD as BASE64, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use super::net::Http;

/// The bundle media type sigstore-python writes (and every v0.3 reader accepts).
pub(crate) const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type of in-toto statements.
const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// The in-toto statement type.
const IN_TOTO_STATEMENT: &str = "https://in-toto.io/Statement/v1";

/// Which Rekor API signing uses (`--rekor-version`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum RekorVersion {
    /// What the deployment's signing config offers: v2 when it lists a Rekor v2 log and a
    /// timestamp authority, else v1.
    Auto,
    /// The Rekor v1 API (entries with a signed entry timestamp).
    #[value(name = "1")]
    V1,
    /// The Rekor v2 API, with an RFC 3161 timestamp from the signing config's TSA.
    #[value(name = "2")]
    V2,
}

/// Where signatures are logged, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LogRoute {
    /// `POST {url}/api/v1/log/entries`.
    V1 {
        /// The log's base URL.
        url: String,
    },
    /// A timestamp from `tsa_url`, then `POST {url}/api/v2/log/entries`.
    V2 {
        /// The log's base URL.
        url: String,
        /// The TSA's full URL.
        tsa_url: String,
    },
}

impl LogRoute {
    /// The route for `version` from the signing config of the deployment at `url`
    /// (`/trust/signing_config.json`). Services are taken as protobuf-specs describes them:
    /// Rekor URLs are base URLs, TSA URLs full URLs; the highest `majorApiVersion` this client
    /// speaks wins. A deployment without a signing config (or an unreadable one) gets v1 at
    /// `url`, unless v2 was asked for.
    pub(crate) fn resolve(
        http: &Http,
        url: &str,
        version: RekorVersion,
    ) -> anyhow::Result<LogRoute> {
        let base = url.trim_end_matches('/');
        let config = http.get_json(&format!("{base}/trust/signing_config.json"));
        let config = match (config, version) {
            (Ok(config), _) => config,
            (Err(_), RekorVersion::Auto | RekorVersion::V1) => {
                return Ok(LogRoute::V1 {
                    url: base.to_owned(),
                });
            }
            (Err(error), RekorVersion::V2) => {
                return Err(error.context("reading the signing config for the Rekor v2 route"));
            }
        };
        Self::from_signing_config(&config, base, version)
    }

    /// [`LogRoute::resolve`] on a signing config already read; `fallback` is the URL used for
    /// v1 when the config lists no Rekor v1 log.
    pub(crate) fn from_signing_config(
        config: &Value,
        fallback: &str,
        version: RekorVersion,
    ) -> anyhow::Result<LogRoute> {
        let service = |list: &str, major: u64| {
            config[list].as_array().and_then(|services| {
                services
                    .iter()
                    .find(|service| service["majorApiVersion"].as_u64() == Some(major))
                    .and_then(|service| service["url"].as_str())
                    .map(|url| url.trim_end_matches('/').to_owned())
            })
        };
        let v2 = service("rekorTlogUrls", 2).zip(service("tsaUrls", 1));
        let v1 = || LogRoute::V1 {
            url: service("rekorTlogUrls", 1).unwrap_or_else(|| fallback.to_owned()),
        };
        Ok(match (version, v2) {
            (RekorVersion::V1, _) | (RekorVersion::Auto, None) => v1(),
            (RekorVersion::Auto | RekorVersion::V2, Some((url, tsa_url))) => {
                LogRoute::V2 { url, tsa_url }
            }
            (RekorVersion::V2, None) => bail!(
                "the signing config offers no Rekor v2 log with a timestamp authority; sign \
                 with --rekor-version 1"
            ),
        })
    }
}

/// Where `cairn` keeps its state: `$CAIRN_HOME`, else `$XDG_CONFIG_HOME/cairn`, else
/// `~/.config/cairn`.
pub(crate) fn home() -> anyhow::Result<PathBuf> {
    if let Some(home) = std::env::var_os("CAIRN_HOME").filter(|home| !home.is_empty()) {
        return Ok(PathBuf::from(home));
    }
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|dir| !dir.is_empty()) {
        return Ok(PathBuf::from(config).join("cairn"));
    }
    let home = std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .context("no $CAIRN_HOME, $XDG_CONFIG_HOME or $HOME to keep the token in")?;
    Ok(PathBuf::from(home).join(".config").join("cairn"))
}

/// The cached identity token's file.
pub(crate) fn token_path() -> anyhow::Result<PathBuf> {
    Ok(home()?.join("identity-token"))
}

/// Asks the INSECURE dev issuer of `cairn-node dev` for a token for `email`.
pub(crate) fn dev_token(http: &Http, issuer: &str, email: &str) -> anyhow::Result<String> {
    let answer = http.send(
        hyper::Method::POST,
        &format!("{}/token", issuer.trim_end_matches('/')),
        &[("content-type", "application/json".to_owned())],
        serde_json::to_vec(&json!({ "email": email }))?,
        &[],
    )?;
    answer.json()?["id_token"]
        .as_str()
        .map(str::to_owned)
        .context("the dev issuer's answer has no id_token")
}

/// Stores `token` where `sign` finds it, readable only by this user.
pub(crate) fn cache_token(token: &str) -> anyhow::Result<PathBuf> {
    let path = token_path()?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    use std::io::Write as _;
    let mut file = options
        .open(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    Ok(path)
}

/// The claims of a JWT, unverified: the CA verifies the token; the client only needs to know
/// which identity claim to prove possession over, and when it expires.
pub(crate) fn claims(token: &str) -> anyhow::Result<Value> {
    let payload = token
        .split('.')
        .nth(1)
        .context("the identity token is not a JWT (header.payload.signature)")?;
    let bytes = URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .context("the identity token's payload is not base64url")?;
    serde_json::from_slice(&bytes).context("the identity token's payload is not JSON")
}

/// The token to sign with: `--identity-token`, else `$SIGSTORE_ID_TOKEN`, else the cached one.
pub(crate) fn load_token(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(token) = given {
        return Ok(token.trim().to_owned());
    }
    if let Some(token) = std::env::var("SIGSTORE_ID_TOKEN")
        .ok()
        .filter(|token| !token.is_empty())
    {
        return Ok(token.trim().to_owned());
    }
    let path = token_path()?;
    let token = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "no identity token: run `cairn login` first (looked in {})",
            path.display()
        )
    })?;
    let token = token.trim().to_owned();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs());
    if claims(&token)?["exp"]
        .as_u64()
        .is_some_and(|exp| exp <= now)
    {
        bail!("the cached identity token has expired: run `cairn login` again");
    }
    Ok(token)
}

/// A signing session: one ephemeral key and its certificate, used for every file of one
/// command (as sigstore-python does).
pub(crate) struct Signer {
    key: EcdsaKeyPair,
    /// What the log entry names as the signer, PEM: the leaf certificate as the CA returned it,
    /// or a managed key's public key.
    signer_pem: String,
    /// The bundle's `verificationMaterial` member for the signer: `certificate` (DER), or a
    /// managed key's `publicKey` hint (the verifier is given the key itself).
    material: (&'static str, Value),
    /// The identity the certificate was issued for (the token's e-mail or subject), or the
    /// managed key's hint.
    pub(crate) identity: String,
    /// The token's issuer (empty for a managed key).
    pub(crate) issuer: String,
    /// The CA's chain above the leaf, PEM (empty for a managed key): cosign's `.sig` layers
    /// carry it beside the certificate.
    pub(crate) chain_pem: String,
}

impl Signer {
    /// Makes a key and gets it certified by the CA at `url` for `token`'s identity.
    pub(crate) fn new(http: &Http, url: &str, token: &str) -> anyhow::Result<Signer> {
        let claims = claims(token)?;
        // The CA checks the proof over the claim its issuer configuration names: the e-mail
        // for e-mail issuers, otherwise the subject (the Fulcio rule).
        let identity = claims["email"]
            .as_str()
            .or_else(|| claims["sub"].as_str())
            .context("the identity token has neither `email` nor `sub`")?
            .to_owned();
        let issuer = claims["iss"].as_str().unwrap_or_default().to_owned();
        let key = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|_| anyhow::anyhow!("generating a P-256 key failed"))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| anyhow::anyhow!("encoding the public key failed"))?;
        let proof = sign_message(&key, identity.as_bytes())?;
        let request = json!({
            "publicKeyRequest": {
                "publicKey": { "algorithm": "ECDSA", "content": pem("PUBLIC KEY", spki.as_ref()) },
                "proofOfPossession": BASE64.encode(proof),
            }
        });
        let answer = http
            .send(
                hyper::Method::POST,
                &format!("{}/api/v2/signingCert", url.trim_end_matches('/')),
                &[
                    ("authorization", format!("Bearer {token}")),
                    ("content-type", "application/json".to_owned()),
                ],
                serde_json::to_vec(&request)?,
                &[],
            )
            .context("getting a certificate from the CA")?
            .json()?;
        let chain = answer["signedCertificateEmbeddedSct"]["chain"]["certificates"]
            .as_array()
            .context("the CA's answer has no certificate chain")?;
        let certificate_pem = chain
            .first()
            .and_then(Value::as_str)
            .context("the CA's answer has no certificate chain")?
            .to_owned();
        let chain_pem = chain
            .iter()
            .skip(1)
            .filter_map(Value::as_str)
            .collect::<String>();
        let certificate_der = pem_body(&certificate_pem)?;
        Ok(Signer {
            key,
            signer_pem: certificate_pem,
            material: (
                "certificate",
                json!({ "rawBytes": BASE64.encode(&certificate_der) }),
            ),
            identity,
            issuer,
            chain_pem,
        })
    }

    /// A managed ECDSA P-256 key from a PKCS#8 PEM file (`--key`): no token, no certificate;
    /// verifiers check the bundle with `--key` and the public key.
    pub(crate) fn from_key_file(path: &Path) -> anyhow::Result<Signer> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        if !text.contains("-----BEGIN PRIVATE KEY-----") {
            bail!(
                "{}: want an unencrypted PKCS#8 PEM P-256 key (BEGIN PRIVATE KEY)",
                path.display()
            );
        }
        let der = pem_body(&text)?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &der)
            .map_err(|_| anyhow::anyhow!("{}: not a P-256 PKCS#8 key", path.display()))?;
        let spki = key
            .public_key()
            .as_der()
            .map_err(|_| anyhow::anyhow!("encoding the public key failed"))?;
        let hint = BASE64.encode(aws_lc_rs::digest::digest(&SHA256, spki.as_ref()).as_ref());
        Ok(Signer {
            signer_pem: pem("PUBLIC KEY", spki.as_ref()),
            material: ("publicKey", json!({ "hint": hint })),
            identity: format!("key {hint}"),
            issuer: String::new(),
            chain_pem: String::new(),
            key,
        })
    }

    /// The signing certificate, PEM, as the CA returned it (`None` for a managed key).
    pub(crate) fn certificate_pem(&self) -> Option<&str> {
        (self.material.0 == "certificate").then_some(self.signer_pem.as_str())
    }

    /// Signs `file` (a hashedrekord entry) and returns its bundle.
    pub(crate) fn sign_file(
        &self,
        http: &Http,
        route: &LogRoute,
        file: &Path,
    ) -> anyhow::Result<Value> {
        let digest = sha256_file(file)?;
        self.sign_digest(http, route, &digest)
            .with_context(|| format!("signing {}", file.display()))
    }

    /// Signs the artifact whose SHA-256 is `digest` (a hashedrekord entry) and returns its
    /// bundle: `sign_file`, and `sign-image` for cosign's simple-signing payload.
    pub(crate) fn sign_digest(
        &self,
        http: &Http,
        route: &LogRoute,
        digest: &aws_lc_rs::digest::Digest,
    ) -> anyhow::Result<Value> {
        let signature = self
            .key
            .sign_digest(digest)
            .map_err(|_| anyhow::anyhow!("signing failed"))?;
        let signature = signature.as_ref().to_vec();
        let message_signature = json!({
            "messageDigest": { "algorithm": "SHA2_256", "digest": BASE64.encode(digest.as_ref()) },
            "signature": BASE64.encode(&signature),
        });
        let url = match route {
            LogRoute::V1 { url } => url,
            LogRoute::V2 { url, tsa_url } => {
                return Ok(json!({
                    "mediaType": BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": self.v2_material(http, url, tsa_url, digest.as_ref(), &signature)?,
                    "messageSignature": message_signature,
                }));
            }
        };
        let proposed = json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "signature": {
                    "content": BASE64.encode(&signature),
                    "publicKey": { "content": BASE64.encode(&self.signer_pem) },
                },
                "data": { "hash": { "algorithm": "sha256", "value": hex::encode(digest.as_ref()) } },
            }
        });
        let entry = submit(http, url, &proposed)?;
        Ok(json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": self.verification_material(&entry, "hashedrekord")?,
            "messageSignature": message_signature,
        }))
    }

    /// Attests `file`: an in-toto statement about it with `predicate` of `predicate_type`,
    /// signed as DSSE and logged as a dsse entry.
    pub(crate) fn attest_file(
        &self,
        http: &Http,
        route: &LogRoute,
        file: &Path,
        predicate_type: &str,
        predicate: &Value,
    ) -> anyhow::Result<Value> {
        let digest = sha256_file(file)?;
        let name = file
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        self.attest_subject(
            http,
            route,
            &name,
            digest.as_ref(),
            predicate_type,
            predicate,
        )
    }

    /// Attests the subject `name` whose SHA-256 is `digest` (a file, or an image manifest for
    /// `sign-image` and `attest-image`): an in-toto statement with `predicate` of
    /// `predicate_type`, signed as DSSE and logged as a dsse entry; returns its bundle.
    pub(crate) fn attest_subject(
        &self,
        http: &Http,
        route: &LogRoute,
        name: &str,
        sha256: &[u8],
        predicate_type: &str,
        predicate: &Value,
    ) -> anyhow::Result<Value> {
        let statement = json!({
            "_type": IN_TOTO_STATEMENT,
            "subject": [{ "name": name, "digest": { "sha256": hex::encode(sha256) } }],
            "predicateType": predicate_type,
            "predicate": predicate,
        });
        let payload = serde_json::to_vec(&statement)?;
        let pae = tlog::entry::pae(IN_TOTO_PAYLOAD_TYPE, &payload);
        let signature = sign_message(&self.key, &pae)?;
        let envelope = json!({
            "payload": BASE64.encode(&payload),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{ "sig": BASE64.encode(&signature) }],
        });
        let url = match route {
            LogRoute::V1 { url } => url,
            LogRoute::V2 { url, tsa_url } => {
                // Rekor v2 logs an envelope as a hashedrekord over the SHA-256 of its PAE (it
                // dropped the dsse kind; sigstore-python 4.5 sends the same request).
                let digest = aws_lc_rs::digest::digest(&SHA256, &pae);
                return Ok(json!({
                    "mediaType": BUNDLE_MEDIA_TYPE,
                    "verificationMaterial": self.v2_material(http, url, tsa_url, digest.as_ref(), &signature)?,
                    "dsseEnvelope": envelope,
                }));
            }
        };
        let proposed = json!({
            "apiVersion": "0.0.1",
            "kind": "dsse",
            "spec": {
                "proposedContent": {
                    "envelope": serde_json::to_string(&envelope)?,
                    "verifiers": [BASE64.encode(&self.signer_pem)],
                },
            }
        });
        let entry = submit(http, url, &proposed)?;
        Ok(json!({
            "mediaType": BUNDLE_MEDIA_TYPE,
            "verificationMaterial": self.verification_material(&entry, "dsse")?,
            "dsseEnvelope": envelope,
        }))
    }

    /// The v2 API's `Verifier`: the certificate, or the managed key's SubjectPublicKeyInfo.
    fn verifier(&self) -> anyhow::Result<Value> {
        let der = BASE64.encode(pem_body(&self.signer_pem)?);
        let key = if self.material.0 == "certificate" {
            json!({ "x509Certificate": { "rawBytes": der } })
        } else {
            json!({ "publicKey": { "rawBytes": der } })
        };
        let mut verifier = key;
        verifier["keyDetails"] = json!("PKIX_ECDSA_P256_SHA_256");
        Ok(verifier)
    }

    /// Timestamps `signature` at `tsa_url`, logs it over `digest` as a hashedrekord 0.0.2
    /// request through the Rekor v2 API at `url` (an attestation's digest is its PAE's), and
    /// returns the bundle's verification material: the entry as the log answered it (a
    /// `TransparencyLogEntry`) and the TSA's reply. The timestamp comes first: it proves the
    /// signature existed while the certificate was valid, and a log entry made without one
    /// would prove nothing to a verifier.
    fn v2_material(
        &self,
        http: &Http,
        url: &str,
        tsa_url: &str,
        digest: &[u8],
        signature: &[u8],
    ) -> anyhow::Result<Value> {
        let request = json!({ "hashedRekordRequestV002": {
            "digest": BASE64.encode(digest),
            "signature": { "content": BASE64.encode(signature), "verifier": self.verifier()? },
        } });
        let mut nonce = [0u8; 8];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| anyhow::anyhow!("no randomness"))?;
        let query = client::timestamp::request(signature, nonce)?;
        let reply = http
            .send(
                hyper::Method::POST,
                tsa_url,
                &[("content-type", "application/timestamp-query".to_owned())],
                query,
                &[],
            )
            .context("getting a timestamp from the TSA")?
            .body;
        client::timestamp::check_reply(&reply, signature, nonce).context("the TSA's timestamp")?;
        let entry = http
            .send(
                hyper::Method::POST,
                &format!("{url}/api/v2/log/entries"),
                &[("content-type", "application/json".to_owned())],
                serde_json::to_vec(&request)?,
                &[],
            )
            .context("logging the signature (Rekor v2)")?
            .json()?;
        Ok(json!({
            (self.material.0): self.material.1,
            "tlogEntries": [entry],
            "timestampVerificationData": {
                "rfc3161Timestamps": [{ "signedTimestamp": BASE64.encode(&reply) }],
            },
        }))
    }

    /// The bundle's verification material from a Rekor v1 entry (the shapes of
    /// protobuf-specs' `TransparencyLogEntry`: 64-bit integers as strings, hashes as base64).
    fn verification_material(&self, entry: &Value, kind: &str) -> anyhow::Result<Value> {
        let proof = &entry["verification"]["inclusionProof"];
        let hex_to_b64 = |value: &Value, what: &str| -> anyhow::Result<String> {
            let text = value
                .as_str()
                .with_context(|| format!("the log's answer has no {what}"))?;
            Ok(BASE64
                .encode(hex::decode(text).with_context(|| format!("the log's {what} is not hex"))?))
        };
        let number = |value: &Value, what: &str| -> anyhow::Result<String> {
            value
                .as_u64()
                .map(|number| number.to_string())
                .with_context(|| format!("the log's answer has no {what}"))
        };
        let hashes = proof["hashes"]
            .as_array()
            .context("the log's answer has no inclusion proof hashes")?
            .iter()
            .map(|hash| hex_to_b64(hash, "proof hash"))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(json!({
            (self.material.0): self.material.1,
            "tlogEntries": [{
                "logIndex": number(&entry["logIndex"], "logIndex")?,
                "logId": { "keyId": hex_to_b64(&entry["logID"], "logID")? },
                "kindVersion": { "kind": kind, "version": "0.0.1" },
                "integratedTime": number(&entry["integratedTime"], "integratedTime")?,
                "inclusionPromise": {
                    "signedEntryTimestamp": entry["verification"]["signedEntryTimestamp"]
                        .as_str()
                        .context("the log's answer has no signed entry timestamp")?,
                },
                "inclusionProof": {
                    "logIndex": number(&proof["logIndex"], "proof logIndex")?,
                    "rootHash": hex_to_b64(&proof["rootHash"], "proof rootHash")?,
                    "treeSize": number(&proof["treeSize"], "proof treeSize")?,
                    "hashes": hashes,
                    "checkpoint": {
                        "envelope": proof["checkpoint"]
                            .as_str()
                            .context("the log's answer has no checkpoint")?,
                    },
                },
                "canonicalizedBody": entry["body"]
                    .as_str()
                    .context("the log's answer has no body")?,
            }],
            "timestampVerificationData": { "rfc3161Timestamps": [] },
        }))
    }
}

/// Posts a proposed entry to the Rekor v1 API and returns the logged entry (an identical entry
/// logged earlier, 409, is as good: it is the same statement).
fn submit(http: &Http, url: &str, proposed: &Value) -> anyhow::Result<Value> {
    let answer = http
        .send(
            hyper::Method::POST,
            &format!("{}/api/v1/log/entries", url.trim_end_matches('/')),
            &[("content-type", "application/json".to_owned())],
            serde_json::to_vec(proposed)?,
            &[409],
        )
        .context("logging the signature")?
        .json()?;
    let entries = answer
        .as_object()
        .filter(|entries| entries.len() == 1)
        .context("the log's answer is not one entry")?;
    entries
        .values()
        .next()
        .cloned()
        .context("the log's answer is not one entry")
}

fn sign_message(key: &EcdsaKeyPair, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    key.sign(&rng, message)
        .map(|signature| signature.as_ref().to_vec())
        .map_err(|_| anyhow::anyhow!("signing failed"))
}

/// SHA-256 of a file, streamed.
fn sha256_file(path: &Path) -> anyhow::Result<aws_lc_rs::digest::Digest> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut context = DigestContext::new(&SHA256);
    let mut buffer = vec![0u8; 1 << 16];
    loop {
        let read = file
            .read(&mut buffer)
            .with_context(|| format!("reading {}", path.display()))?;
        if read == 0 {
            break;
        }
        context.update(&buffer[..read]);
    }
    Ok(context.finish())
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = BASE64.encode(der);
    let mut text = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        text.push_str(&String::from_utf8_lossy(line));
        text.push('\n');
    }
    text.push_str(&format!("-----END {label}-----\n"));
    text
}

fn pem_body(pem: &str) -> anyhow::Result<Vec<u8>> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    BASE64
        .decode(body.trim())
        .context("the CA's certificate is not PEM")
}

/// Writes `value` as pretty JSON to `path`.
pub(crate) fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rekor: &[(u64, &str)], tsa: Option<&str>) -> Value {
        let service = |major: u64, url: &str| {
            json!({ "url": url, "majorApiVersion": major, "operator": "cairn",
                    "validFor": { "start": "2026-01-01T00:00:00Z" } })
        };
        json!({
            "rekorTlogUrls": rekor.iter().map(|(major, url)| service(*major, url)).collect::<Vec<_>>(),
            "tsaUrls": tsa.map(|url| vec![service(1, url)]).unwrap_or_default(),
        })
    }

    /// `auto` takes v2 only with a TSA beside it; `1` and `2` force a version, and `2` fails
    /// when the config cannot serve it.
    #[test]
    fn the_route_follows_the_signing_config() {
        let both = config(
            &[(2, "http://log/"), (1, "http://log-v1")],
            Some("http://log/api/v1/timestamp"),
        );
        let v2 = LogRoute::V2 {
            url: "http://log".to_owned(),
            tsa_url: "http://log/api/v1/timestamp".to_owned(),
        };
        let v1 = LogRoute::V1 {
            url: "http://log-v1".to_owned(),
        };
        let route = |config: &Value, version| {
            LogRoute::from_signing_config(config, "http://fallback", version)
        };
        assert_eq!(route(&both, RekorVersion::Auto).unwrap(), v2);
        assert_eq!(route(&both, RekorVersion::V2).unwrap(), v2);
        assert_eq!(route(&both, RekorVersion::V1).unwrap(), v1);

        let no_tsa = config(&[(2, "http://log"), (1, "http://log-v1")], None);
        assert_eq!(route(&no_tsa, RekorVersion::Auto).unwrap(), v1);
        assert!(route(&no_tsa, RekorVersion::V2).is_err());

        let v1_only = config(&[(1, "http://log-v1")], Some("http://tsa"));
        assert_eq!(route(&v1_only, RekorVersion::Auto).unwrap(), v1);
        let empty = config(&[], None);
        assert_eq!(
            route(&empty, RekorVersion::Auto).unwrap(),
            LogRoute::V1 {
                url: "http://fallback".to_owned()
            }
        );
    }
}
