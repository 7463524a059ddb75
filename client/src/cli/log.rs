//! `cairn log`: the log itself, as rekor-cli users expect it, verified against the trusted root.
//!
//! `info` fetches the latest signed checkpoint, verifies its signature with the log's key, and
//! proves it consistent with the last checkpoint this machine saw (kept per log URL in
//! `$CAIRN_HOME/log-state.json`): a log that rewrote or forked its history fails here. `get`
//! prints an entry by index or UUID.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use client::TrustedRoot;
use serde::{Deserialize, Serialize};

use super::net::Http;

/// What this machine last saw of a log: its size and root hash (hex).
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) tree_size: u64,
    pub(crate) root_hash: String,
}

/// The verified state of a log after `info`.
pub(crate) struct Info {
    pub(crate) tree_size: u64,
    pub(crate) root_hash: String,
    pub(crate) previous: Option<Seen>,
    pub(crate) checkpoint: String,
}

/// Fetches, verifies and records the log's latest checkpoint.
pub(crate) fn info(
    http: &Http,
    url: &str,
    root: &TrustedRoot,
    state: &Path,
) -> anyhow::Result<Info> {
    let url = url.trim_end_matches('/');
    let answer = http.get_json(&format!("{url}/api/v1/log"))?;
    let checkpoint = answer["signedTreeHead"]
        .as_str()
        .filter(|note| !note.is_empty())
        .context("the log has no signed checkpoint yet (is it empty?)")?
        .to_owned();
    // The log whose key signs this checkpoint: try each trusted log.
    let (tree_size, root_hash) = root
        .tlogs
        .iter()
        .find_map(|log| client::log_entry::verify_checkpoint(&checkpoint, log).ok())
        .context("the checkpoint is not signed by any log in the trusted root")?;
    let root_hex = hex::encode(&root_hash);
    if answer["treeSize"].as_u64() != Some(tree_size)
        || answer["rootHash"].as_str() != Some(root_hex.as_str())
    {
        bail!("the log's treeSize and rootHash are not the ones its checkpoint signs");
    }
    let mut seen: BTreeMap<String, Seen> = match std::fs::read(state) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a log state file", state.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", state.display())),
    };
    let previous = seen.get(url).cloned();
    if let Some(previous) = &previous {
        if previous.tree_size > tree_size {
            bail!(
                "the log shrank: this machine saw size {}, it now signs size {tree_size}",
                previous.tree_size
            );
        }
        let old_root = hex::decode(&previous.root_hash).context("the state file's root hash")?;
        let proof: Vec<Vec<u8>> = if previous.tree_size == tree_size {
            Vec::new()
        } else {
            let answer = http.get_json(&format!(
                "{url}/api/v1/log/proof?firstSize={}&lastSize={tree_size}",
                previous.tree_size
            ))?;
            answer["hashes"]
                .as_array()
                .context("the consistency proof has no hashes")?
                .iter()
                .map(|hash| {
                    hash.as_str()
                        .and_then(|hash| hex::decode(hash).ok())
                        .context("a consistency proof hash is not hex")
                })
                .collect::<anyhow::Result<_>>()?
        };
        tlog::proof::verify_consistency_bytes(
            previous.tree_size,
            tree_size,
            &proof,
            &old_root,
            &root_hash,
        )
        .map_err(|error| {
            anyhow::anyhow!(
                "the log is not consistent with the size-{} tree this machine saw: {error}",
                previous.tree_size
            )
        })?;
    }
    seen.insert(
        url.to_owned(),
        Seen {
            tree_size,
            root_hash: root_hex.clone(),
        },
    );
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(state, serde_json::to_vec_pretty(&seen)?)
        .with_context(|| format!("writing {}", state.display()))?;
    Ok(Info {
        tree_size,
        root_hash: root_hex,
        previous,
        checkpoint,
    })
}

/// An entry by index (digits) or UUID (hex), as the log returns it, with its body decoded.
pub(crate) fn get(http: &Http, url: &str, which: &str) -> anyhow::Result<serde_json::Value> {
    let url = url.trim_end_matches('/');
    let path = if which.bytes().all(|byte| byte.is_ascii_digit()) {
        format!("{url}/api/v1/log/entries?logIndex={which}")
    } else {
        format!("{url}/api/v1/log/entries/{which}")
    };
    let mut answer = http.get_json(&path)?;
    if let Some(entries) = answer.as_object_mut() {
        for entry in entries.values_mut() {
            let body = entry["body"]
                .as_str()
                .and_then(|body| BASE64.decode(body).ok())
                .and_then(|body| serde_json::from_slice::<serde_json::Value>(&body).ok());
            if let Some(body) = body {
                entry["decodedBody"] = body;
            }
        }
    }
    Ok(answer)
}
