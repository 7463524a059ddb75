//! The monitor: follows one log from a starting index, verifies every checkpoint it sees (the
//! log's signature, and consistency with the last one it verified), reads every new entry from
//! the log's entry bundles, checks them all at once (the tree's right edge at the cursor, read
//! from tiles, plus the new entries must give the verified root), and reports the entries
//! whose certificates name an identity (an e-mail or URI subject alternative name), with their
//! inclusion proofs. Its cursor (the last verified checkpoint and the next index)
//! is kept in a file, replaced atomically, so a monitor resumes where it stopped.
//!
//! Entries are found by meaning, not by schema: every string in an entry's JSON that is a
//! base64 DER certificate, or base64 or plain PEM certificates, is parsed and its SANs
//! compared. That covers hashedrekord and dsse entries of Rekor v1 (PEM in `publicKey`) and
//! v2 (DER in `x509Certificate.rawBytes`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use tlog::checkpoint::Checkpoint;
use tlog::keys::Verifiers;
use tlog::note::Note;
use tlog::tile::TILE_WIDTH;
use tlog::{ConsistencyProof, Hash, TreeSize, leaf_hash};
use x509_parser::extensions::GeneralName;

use crate::fetch::{FetchError, LogClient, TileCache};
use crate::store::SplitView;

/// Why a monitoring step failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MonitorError {
    /// Fetching failed (retried at the next step).
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The log's checkpoint is malformed or not signed by its key.
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// The log showed two checkpoints that are not one history.
    #[error("SPLIT VIEW of {}: {}", .0.origin, .0.reason)]
    SplitView(Box<SplitView>),
    /// An entry the log served is not the one in its tree at that index.
    #[error("entry {index}: {detail}")]
    Entry {
        /// The leaf index.
        index: u64,
        /// What is wrong.
        detail: String,
    },
    /// The cursor file could not be read or written.
    #[error("cursor {path}: {detail}")]
    Cursor {
        /// The file.
        path: String,
        /// What failed.
        detail: String,
    },
}

/// Where the monitor is: the last checkpoint it verified, and the next entry to read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The log's origin.
    pub origin: String,
    /// The next leaf index to read.
    pub next_index: u64,
    /// The last verified checkpoint, as the log signed it (empty before the first).
    pub checkpoint: String,
}

/// An entry naming the identity, with the proof that it is in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    /// The leaf index.
    pub index: u64,
    /// The identity matched (a SAN of a certificate in the entry).
    pub identity: String,
    /// The entry, base64.
    pub entry: String,
    /// The tree size of the inclusion proof.
    pub tree_size: u64,
    /// The inclusion proof's hashes, base64.
    pub inclusion_proof: Vec<String>,
    /// The signed checkpoint the proof leads to.
    pub checkpoint: String,
    /// The OpenID Connect issuer the certificate names (Fulcio's issuer extension), if any.
    pub issuer: Option<String>,
    /// When the certificate became valid (RFC 3339, UTC): for a short-lived certificate, about
    /// when the signature was made.
    pub certified_at: String,
    /// The digest the entry's signature covers, `algorithm:hex`: the artifact's for a
    /// hashedrekord, the payload's for dsse and intoto. Absent for an entry that does not
    /// parse as one of those.
    pub signed_digest: Option<String>,
}

/// A monitor of one log.
#[derive(Debug)]
pub struct Monitor {
    log: LogClient,
    origin: String,
    verifiers: Verifiers,
    identity: String,
    cursor_path: PathBuf,
}

impl Monitor {
    /// Monitors the log at `log` (its tlog-tiles prefix), signed by `verifiers` under `origin`,
    /// for `identity`, with its cursor at `cursor_path`.
    pub fn new(
        log: LogClient,
        origin: &str,
        verifiers: Verifiers,
        identity: &str,
        cursor_path: &Path,
    ) -> Monitor {
        Monitor {
            log,
            origin: origin.to_owned(),
            verifiers,
            identity: identity.to_owned(),
            cursor_path: cursor_path.to_owned(),
        }
    }

    /// The cursor on disk, or a fresh one starting at `start` if there is none.
    pub fn load_cursor(&self, start: u64) -> Result<Cursor, MonitorError> {
        match std::fs::read(&self.cursor_path) {
            Ok(bytes) => {
                let cursor: Cursor =
                    serde_json::from_slice(&bytes).map_err(|e| self.cursor_error(e))?;
                if cursor.origin != self.origin {
                    return Err(self.cursor_error(format!("is for origin {:?}", cursor.origin)));
                }
                Ok(cursor)
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Cursor {
                origin: self.origin.clone(),
                next_index: start,
                checkpoint: String::new(),
            }),
            Err(error) => Err(self.cursor_error(error)),
        }
    }

    fn cursor_error(&self, detail: impl std::fmt::Display) -> MonitorError {
        MonitorError::Cursor {
            path: self.cursor_path.display().to_string(),
            detail: detail.to_string(),
        }
    }

    /// Writes the cursor: a temporary file, fsynced, renamed over the old one.
    pub fn save_cursor(&self, cursor: &Cursor) -> Result<(), MonitorError> {
        let json = serde_json::to_vec_pretty(cursor).map_err(|e| self.cursor_error(e))?;
        let temporary = self.cursor_path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            use std::io::Write as _;
            let mut file = std::fs::File::create(&temporary)?;
            file.write_all(&json)?;
            file.sync_all()?;
            std::fs::rename(&temporary, &self.cursor_path)
        };
        write().map_err(|e| self.cursor_error(e))
    }

    /// One step: fetch and verify the log's checkpoint, prove it consistent with the cursor's,
    /// read and check the entries from the cursor up to it, and return the new cursor (not yet
    /// saved) and the matches.
    pub async fn step(&self, cursor: &Cursor) -> Result<(Cursor, Vec<Match>), MonitorError> {
        let bytes = self.log.checkpoint().await?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let checkpoint = self.open(&bytes)?;
        let size = checkpoint.size.0;
        let tiles = TileCache::default();
        if !cursor.checkpoint.is_empty() {
            let previous = self.open(cursor.checkpoint.as_bytes())?;
            self.check_consistency(&previous, &checkpoint, &cursor.checkpoint, &text, &tiles)
                .await?;
            if size <= previous.size.0 {
                return Ok((cursor.clone(), Vec::new()));
            }
        }
        // Every entry is checked at once: the tree's right edge at the cursor, plus every new
        // entry, must give the verified root. A wrong edge hash or entry changes the root.
        let start = cursor.next_index.min(size);
        let mut tree = if start == 0 {
            tlog::Tree::new()
        } else {
            self.log.edge_from_tiles(start, size, &tiles).await?
        };
        let mut candidates = Vec::new();
        while tree.size().0 < size {
            let index = tree.size().0;
            let bundle = index / u64::from(TILE_WIDTH);
            let first = bundle * u64::from(TILE_WIDTH);
            let width = u16::try_from((size - first).min(u64::from(TILE_WIDTH)))
                .map_err(|_| MonitorError::Checkpoint("width".to_owned()))?;
            let entries = self.log.entries(bundle, width).await?;
            // `index - first` is below the tile width.
            let skip = usize::try_from(index - first).unwrap_or(usize::MAX);
            if entries.len() <= skip {
                return Err(MonitorError::Entry {
                    index,
                    detail: format!("entry bundle {bundle} holds {} entries", entries.len()),
                });
            }
            for entry in entries.into_iter().skip(skip) {
                let leaf =
                    tree.append(leaf_hash(&entry), |_, _| {})
                        .map_err(|e| MonitorError::Entry {
                            index,
                            detail: e.to_string(),
                        })?;
                if let Some(certificate) = names(&entry, &self.identity) {
                    candidates.push((leaf.0, certificate, entry));
                }
            }
        }
        if tree.root() != checkpoint.root {
            return Err(MonitorError::Entry {
                index: start,
                detail: format!(
                    "the entries from {start} to {size} and the tiles do not reproduce the \
                     checkpoint's root"
                ),
            });
        }
        let mut matches = Vec::new();
        for (index, certificate, entry) in candidates {
            let proof = self
                .log
                .inclusion_proof_from_tiles(index, size, &tiles)
                .await?;
            proof
                .verify(&leaf_hash(&entry), &checkpoint.root)
                .map_err(|e| MonitorError::Entry {
                    index,
                    detail: format!("inclusion proof from the tiles: {e}"),
                })?;
            let signed_digest = tlog::entry::Entry::parse(&entry).ok().map(|parsed| {
                let digest = parsed.signed_digest();
                format!("{}:{}", digest.algorithm(), digest.to_hex())
            });
            matches.push(Match {
                index,
                identity: certificate.identity,
                entry: BASE64.encode(&entry),
                tree_size: size,
                inclusion_proof: proof.hashes.iter().map(Hash::to_base64).collect(),
                checkpoint: text.clone(),
                issuer: certificate.issuer,
                certified_at: certificate.not_before,
                signed_digest,
            });
        }
        Ok((
            Cursor {
                origin: self.origin.clone(),
                next_index: size.max(cursor.next_index),
                checkpoint: text,
            },
            matches,
        ))
    }

    fn open(&self, bytes: &[u8]) -> Result<Checkpoint, MonitorError> {
        let note = Note::parse(bytes).map_err(|e| MonitorError::Checkpoint(e.to_string()))?;
        note.verify(&self.verifiers)
            .map_err(|e| MonitorError::Checkpoint(e.to_string()))?;
        let checkpoint =
            Checkpoint::parse(note.text()).map_err(|e| MonitorError::Checkpoint(e.to_string()))?;
        if checkpoint.origin != self.origin {
            return Err(MonitorError::Checkpoint(format!(
                "origin is {:?}, want {:?}",
                checkpoint.origin, self.origin
            )));
        }
        Ok(checkpoint)
    }

    async fn check_consistency(
        &self,
        a: &Checkpoint,
        b: &Checkpoint,
        a_text: &str,
        b_text: &str,
        tiles: &TileCache,
    ) -> Result<(), MonitorError> {
        let split = |reason: String| {
            MonitorError::SplitView(Box::new(SplitView {
                origin: self.origin.clone(),
                reason,
                first: a_text.to_owned(),
                second: b_text.to_owned(),
            }))
        };
        let (old, new) = if a.size <= b.size { (a, b) } else { (b, a) };
        if old.size == new.size {
            return if old.root == new.root {
                Ok(())
            } else {
                Err(split(format!("two roots for tree size {}", old.size.0)))
            };
        }
        if old.size.0 == 0 {
            return Ok(());
        }
        let hashes = self
            .log
            .consistency_proof(old.size.0, new.size.0, tiles)
            .await?;
        let proof = ConsistencyProof {
            old_size: TreeSize(old.size.0),
            new_size: TreeSize(new.size.0),
            hashes,
        };
        if proof.verify(&old.root, &new.root).is_ok() {
            return Ok(());
        }
        // The proof endpoint may be what is broken; the log's own tiles must prove it.
        let hashes = self
            .log
            .consistency_proof_from_tiles(old.size.0, new.size.0, tiles)
            .await?;
        let proof = ConsistencyProof { hashes, ..proof };
        proof.verify(&old.root, &new.root).map_err(|e| {
            split(format!(
                "no consistency proof from size {} to {}: {e}",
                old.size.0, new.size.0
            ))
        })
    }
}

/// A certificate in an entry that names the identity a monitor looks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NamedIn {
    /// The identity (a SAN of the certificate).
    pub identity: String,
    /// The OpenID Connect issuer in Fulcio's issuer extension, if the certificate has one.
    pub issuer: Option<String>,
    /// The start of the certificate's validity, RFC 3339 in UTC.
    pub not_before: String,
}

/// The first certificate in the entry that names `identity` in a SAN.
pub fn names(entry: &[u8], identity: &str) -> Option<NamedIn> {
    let json: serde_json::Value = serde_json::from_slice(entry).ok()?;
    let mut strings = Vec::new();
    collect_strings(&json, &mut strings, 0);
    strings.into_iter().find_map(|s| string_names(s, identity))
}

fn collect_strings<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>, depth: usize) {
    // Entries are small and shallow; the bound only guards against a hostile one.
    if depth > 32 {
        return;
    }
    match value {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => {
            for item in items {
                collect_strings(item, out, depth + 1);
            }
        }
        serde_json::Value::Object(map) => {
            for item in map.values() {
                collect_strings(item, out, depth + 1);
            }
        }
        _ => {}
    }
}

fn string_names(text: &str, identity: &str) -> Option<NamedIn> {
    if text.contains("-----BEGIN CERTIFICATE-----") {
        return pem_names(text.as_bytes(), identity);
    }
    let bytes = BASE64.decode(text).ok()?;
    if bytes.starts_with(b"-----BEGIN") {
        return pem_names(&bytes, identity);
    }
    der_names(&bytes, identity)
}

fn pem_names(mut pem: &[u8], identity: &str) -> Option<NamedIn> {
    // A chain holds at most a few certificates; stop at the first that fails to parse.
    for _ in 0..tlog::entry::PEM_CERTIFICATES_MAX {
        let (rest, block) = x509_parser::pem::parse_x509_pem(pem).ok()?;
        if let Some(named) = der_names(&block.contents, identity) {
            return Some(named);
        }
        pem = rest;
    }
    None
}

/// Fulcio's OpenID Connect issuer extensions: 1.3.6.1.4.1.57264.1.8 (a DER UTF8String) and the
/// deprecated 1.3.6.1.4.1.57264.1.1 (the raw string).
const ISSUER_V2: &str = "1.3.6.1.4.1.57264.1.8";
const ISSUER_V1: &str = "1.3.6.1.4.1.57264.1.1";

fn der_names(der: &[u8], identity: &str) -> Option<NamedIn> {
    if der.first() != Some(&0x30) {
        return None;
    }
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = certificate.subject_alternative_name().ok()??;
    let named = san.value.general_names.iter().any(|name| match name {
        GeneralName::RFC822Name(value) | GeneralName::URI(value) => *value == identity,
        _ => false,
    });
    if !named {
        return None;
    }
    let extension = |oid: &str| {
        certificate
            .extensions()
            .iter()
            .find(|extension| extension.oid.to_id_string() == oid)
            .map(|extension| extension.value)
    };
    // Read as `cairn verify` reads it (`client::certificate`, which cannot be called from
    // here): the newer extension when present, even if malformed; else the older one, which
    // must be UTF-8.
    let issuer = match extension(ISSUER_V2) {
        Some(value) => match x509_parser::der_parser::der::parse_der_utf8string(value) {
            Ok(([], any)) => any.as_str().ok().map(str::to_owned),
            _ => None,
        },
        None => extension(ISSUER_V1)
            .and_then(|value| std::str::from_utf8(value).ok())
            .map(str::to_owned),
    };
    let not_before = certificate.validity().not_before.to_datetime();
    Some(NamedIn {
        identity: identity.to_owned(),
        issuer,
        not_before: format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            not_before.year(),
            u8::from(not_before.month()),
            not_before.day(),
            not_before.hour(),
            not_before.minute(),
            not_before.second()
        ),
    })
}
