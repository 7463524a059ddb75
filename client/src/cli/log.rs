//! `cairn log`: the log itself, as rekor-cli users expect it, verified against the trusted root.
//!
//! `info` fetches the latest signed checkpoint, verifies its signature with the log's key, and
//! proves it consistent with the last checkpoint this machine saw (kept per log URL in
//! `$CAIRN_HOME/log-state.json`, with its origin): a log that rewrote or forked its history, or a
//! URL that now serves another log of the trusted root, fails here. `get`
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
    /// The origin of the log's checkpoints: the URL must go on serving that log, not another
    /// log of the trusted root. Empty in state files written before it was recorded.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) origin: String,
}

/// The verified state of a log after `info`.
pub(crate) struct Info {
    pub(crate) tree_size: u64,
    pub(crate) root_hash: String,
    pub(crate) previous: Option<Seen>,
    pub(crate) checkpoint: String,
}

/// A checkpoint whose signature verified with a log key from the trusted root.
#[derive(Clone, Debug)]
pub(crate) struct Checkpoint {
    pub(crate) tree_size: u64,
    pub(crate) root_hash: Vec<u8>,
    pub(crate) note: String,
    /// The note's origin line.
    pub(crate) origin: String,
    /// The trusted root's key that verified it.
    pub(crate) log_key: Vec<u8>,
}

impl Checkpoint {
    /// Whether `other` is a checkpoint of the same log: same origin, same trusted key. Any
    /// log of the trusted root verifies, so this is what keeps one command on one log.
    pub(crate) fn same_log(&self, other: &Checkpoint) -> bool {
        self.origin == other.origin && self.log_key == other.log_key
    }
}

/// Verifies a signed checkpoint (a signed note) with whichever log of the trusted root signed it.
pub(crate) fn open_checkpoint(note: &str, root: &TrustedRoot) -> anyhow::Result<Checkpoint> {
    let (tree_size, root_hash, log) = root
        .tlogs
        .iter()
        .find_map(|log| {
            client::log_entry::verify_checkpoint(note, log)
                .ok()
                .map(|(size, hash)| (size, hash, log))
        })
        .context("the checkpoint is not signed by any log in the trusted root")?;
    Ok(Checkpoint {
        tree_size,
        root_hash,
        note: note.to_owned(),
        origin: note.split('\n').next().unwrap_or_default().to_owned(),
        log_key: log.public_key.clone(),
    })
}

/// The log's latest checkpoint, its signature verified with the trusted root.
pub(crate) fn latest_checkpoint(
    http: &Http,
    url: &str,
    root: &TrustedRoot,
) -> anyhow::Result<Checkpoint> {
    let answer = http.get_json(&format!("{url}/api/v1/log"))?;
    let note = answer["signedTreeHead"]
        .as_str()
        .filter(|note| !note.is_empty())
        .context("the log has no signed checkpoint yet (is it empty?)")?;
    let checkpoint = open_checkpoint(note, root)?;
    if answer["treeSize"].as_u64() != Some(checkpoint.tree_size)
        || answer["rootHash"].as_str() != Some(hex::encode(&checkpoint.root_hash).as_str())
    {
        bail!("the log's treeSize and rootHash are not the ones its checkpoint signs");
    }
    Ok(checkpoint)
}

/// The hashes of the log's consistency proof from `old` to `new` leaves (Rekor v1's
/// `/api/v1/log/proof`), and the root hash the log claims for `new`.
fn consistency_proof(
    http: &Http,
    url: &str,
    old: u64,
    new: u64,
) -> anyhow::Result<(Vec<Vec<u8>>, Vec<u8>)> {
    let answer = http.get_json(&format!(
        "{url}/api/v1/log/proof?firstSize={old}&lastSize={new}"
    ))?;
    let hashes = answer["hashes"]
        .as_array()
        .context("the consistency proof has no hashes")?
        .iter()
        .map(|hash| {
            hash.as_str()
                .and_then(|hash| hex::decode(hash).ok())
                .context("a consistency proof hash is not hex")
        })
        .collect::<anyhow::Result<_>>()?;
    let root = answer["rootHash"]
        .as_str()
        .and_then(|root| hex::decode(root).ok())
        .context("the consistency proof has no hex rootHash")?;
    Ok((hashes, root))
}

/// Proves, with a proof fetched from the log and checked with `tlog`, that the tree of
/// `old_size` leaves with root `old_root` is a prefix of the one of `new_size` with `new_root`.
pub(crate) fn prove_consistent(
    http: &Http,
    url: &str,
    (old_size, old_root): (u64, &[u8]),
    (new_size, new_root): (u64, &[u8]),
) -> anyhow::Result<()> {
    if old_size > new_size {
        bail!("size {new_size} is smaller than size {old_size}: the log shrank");
    }
    if old_size == 0 {
        // Every tree extends the empty one (a log's first, size-0 checkpoint): nothing to
        // prove, but the old root must be the empty tree's.
        if old_root != &tlog::Hash::EMPTY_ROOT.as_bytes()[..] {
            bail!("a size-0 tree whose root is not the empty tree's");
        }
        return Ok(());
    }
    let proof = if old_size == new_size {
        Vec::new()
    } else {
        consistency_proof(http, url, old_size, new_size)?.0
    };
    tlog::proof::verify_consistency_bytes(old_size, new_size, &proof, old_root, new_root).map_err(
        |error| anyhow::anyhow!("size {old_size} is not consistent with size {new_size}: {error}"),
    )
}

/// The root hash of the log's tree of `size` leaves, proved to be a prefix of the verified
/// checkpoint `anchor` (the log's claim, checked with a consistency proof to `anchor`).
pub(crate) fn root_at(
    http: &Http,
    url: &str,
    size: u64,
    anchor: &Checkpoint,
) -> anyhow::Result<Vec<u8>> {
    if size == 0 || size > anchor.tree_size {
        bail!(
            "size {size} is not in the log's verified tree of {} leaves (1 to {})",
            anchor.tree_size,
            anchor.tree_size
        );
    }
    if size == anchor.tree_size {
        return Ok(anchor.root_hash.clone());
    }
    // Any proof ending at `size` carries the log's root there; a one-leaf tree needs none.
    let (_, claimed) = consistency_proof(http, url, 1, size)?;
    prove_consistent(
        http,
        url,
        (size, &claimed),
        (anchor.tree_size, &anchor.root_hash),
    )
    .context("the root the log gives for that size is not the verified log's")?;
    Ok(claimed)
}

/// Fetches, verifies and records the log's latest checkpoint.
pub(crate) fn info(
    http: &Http,
    url: &str,
    root: &TrustedRoot,
    state: &Path,
) -> anyhow::Result<Info> {
    let url = url.trim_end_matches('/');
    let latest = latest_checkpoint(http, url, root)?;
    let (tree_size, root_hash, origin) = (latest.tree_size, latest.root_hash, latest.origin);
    let checkpoint = latest.note;
    let root_hex = hex::encode(&root_hash);
    let mut seen: BTreeMap<String, Seen> = match std::fs::read(state) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a log state file", state.display()))?,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
        Err(error) => return Err(error).with_context(|| format!("reading {}", state.display())),
    };
    let previous = seen.get(url).cloned();
    if let Some(previous) = &previous {
        // Sizes and roots alone would let the URL switch to another trusted log whose tree
        // happens to match.
        if !previous.origin.is_empty() && previous.origin != origin {
            bail!(
                "the log at {url} now signs as {origin:?}; this machine saw {:?} there",
                previous.origin
            );
        }
        if previous.tree_size > tree_size {
            bail!(
                "the log shrank: this machine saw size {}, it now signs size {tree_size}",
                previous.tree_size
            );
        }
        let old_root = hex::decode(&previous.root_hash).context("the state file's root hash")?;
        prove_consistent(
            http,
            url,
            (previous.tree_size, &old_root),
            (tree_size, &root_hash),
        )
        .map_err(|error| {
            anyhow::anyhow!(
                "the log is not consistent with the size-{} tree this machine saw: {error:#}",
                previous.tree_size
            )
        })?;
    }
    seen.insert(
        url.to_owned(),
        Seen {
            tree_size,
            root_hash: root_hex.clone(),
            origin,
        },
    );
    if let Some(dir) = state.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    // Replaced atomically: a crash mid-write must not lose what this machine saw.
    let temporary = state.with_extension("json.tmp");
    std::fs::write(&temporary, serde_json::to_vec_pretty(&seen)?)
        .with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, state).with_context(|| format!("writing {}", state.display()))?;
    Ok(Info {
        tree_size,
        root_hash: root_hex,
        previous,
        checkpoint,
    })
}

/// Adds each entry's body, decoded, as `decodedBody` (for people; what was verified is `body`).
pub(crate) fn decode_bodies(answer: &mut serde_json::Value) {
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
}

/// What to search the log's index for.
#[derive(Clone, Debug)]
pub(crate) enum Criterion {
    /// An artifact digest, `sha256:<hex>`.
    Digest(String),
    /// A PEM public key or certificate.
    PublicKey(Vec<u8>),
    /// An e-mail address (Rekor's `email`).
    Email(String),
}

/// One search result: the entry's UUID, and its index when the server said it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Found {
    pub(crate) uuid: String,
    #[serde(rename = "logIndex", skip_serializing_if = "Option::is_none")]
    pub(crate) log_index: Option<u64>,
}

/// The most results `search` collects by paging (`/api/v1/cairn/index`), to bound memory.
pub(crate) const SEARCH_RESULTS_MAX: usize = 100_000;

/// `POST /api/v1/index/retrieve` (Rekor v1, so it works against any Rekor): the UUIDs of the
/// artifact log's entries that match all (`and`) or any of `criteria`.
pub(crate) fn search_index(
    http: &Http,
    url: &str,
    criteria: &[Criterion],
    and: bool,
) -> anyhow::Result<Vec<Found>> {
    let mut query = serde_json::Map::new();
    for criterion in criteria {
        let (name, value) = match criterion {
            Criterion::Digest(digest) => ("hash", serde_json::json!(digest)),
            Criterion::PublicKey(pem) => (
                "publicKey",
                serde_json::json!({ "format": "x509", "content": BASE64.encode(pem) }),
            ),
            Criterion::Email(email) => ("email", serde_json::json!(email)),
        };
        if query.insert(name.to_owned(), value).is_some() {
            bail!("give each kind of search criterion at most once");
        }
    }
    if criteria.len() > 1 {
        query.insert("operator".into(), (if and { "and" } else { "or" }).into());
    }
    let answer = http
        .send(
            hyper::Method::POST,
            &format!("{url}/api/v1/index/retrieve"),
            &[("content-type", "application/json".to_owned())],
            serde_json::to_vec(&query)?,
            &[],
        )?
        .json()?;
    let uuids = answer
        .as_array()
        .context("the search answer is not a JSON array of UUIDs")?;
    uuids
        .iter()
        .map(|uuid| {
            let uuid = uuid
                .as_str()
                .filter(|uuid| uuid.bytes().all(|byte| byte.is_ascii_hexdigit()))
                .context("the search answer holds something that is not a hex UUID")?;
            Ok(Found {
                uuid: uuid.to_owned(),
                log_index: None,
            })
        })
        .collect()
}

/// Cairn's paged `GET /api/v1/cairn/index` over `log` (`artifacts` or `certificates`) for one
/// `parameter` (`identity`, `hash` or `publicKeyHash`), following the cursor to the end;
/// `progress` is told how many were found so far after each page.
pub(crate) fn search_paged(
    http: &Http,
    url: &str,
    log: &str,
    parameter: &str,
    value: &str,
    mut progress: impl FnMut(usize),
) -> anyhow::Result<Vec<Found>> {
    let mut found = Vec::new();
    let mut after: Option<u64> = None;
    loop {
        let mut query = form_query(&[("log", log), (parameter, value), ("limit", "1000")]);
        if let Some(after) = after {
            query.push_str(&format!("&after={after}"));
        }
        let page = http.get_json(&format!("{url}/api/v1/cairn/index?{query}"))?;
        let entries = page["entries"]
            .as_array()
            .context("the index page has no entries array")?;
        for entry in entries {
            let index = entry["logIndex"]
                .as_u64()
                .context("an index entry has no logIndex")?;
            if after.is_some_and(|after| index <= after) {
                bail!("the index pages are not in log order (index {index} after {after:?})");
            }
            let uuid = entry["uuid"]
                .as_str()
                .context("an index entry has no uuid")?;
            found.push(Found {
                uuid: uuid.to_owned(),
                log_index: Some(index),
            });
            after = Some(index);
        }
        progress(found.len());
        if found.len() > SEARCH_RESULTS_MAX {
            bail!("more than {SEARCH_RESULTS_MAX} entries match; narrow the search");
        }
        match page["next"].as_u64() {
            Some(_) if entries.is_empty() => bail!("the index gave a cursor after an empty page"),
            Some(_) => {}
            None => return Ok(found),
        }
    }
}

fn form_query(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| format!("{name}={}", percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn percent_encode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// An entry whose inclusion in the verified log was proved.
#[derive(Clone, Debug)]
pub(crate) struct IncludedEntry {
    pub(crate) uuid: String,
    pub(crate) log_index: u64,
    /// The canonical body (the leaf).
    pub(crate) body: Vec<u8>,
    /// The tree size the inclusion proof is for.
    pub(crate) proof_size: u64,
}

/// Which entry to fetch.
#[derive(Clone, Debug)]
pub(crate) enum EntryId {
    Index(u64),
    Uuid(String),
}

/// Fetches an entry (Rekor v1) and proves it is in the log whose verified checkpoint is
/// `anchor`: its UUID is its leaf hash, its inclusion proof leads to the root of a checkpoint
/// signed by a trusted log key, and that checkpoint is consistent with `anchor`.
/// `Ok(None)` if the log has no such entry.
pub(crate) fn verify_entry(
    http: &Http,
    url: &str,
    root: &TrustedRoot,
    anchor: &Checkpoint,
    id: &EntryId,
) -> anyhow::Result<Option<IncludedEntry>> {
    match fetch_entry(http, url, id)? {
        None => Ok(None),
        Some(answer) => verify_answer(http, url, root, anchor, id, &answer).map(Some),
    }
}

/// An entry as the log answers it (Rekor v1: `{uuid: {body, logIndex, verification, ...}}`),
/// or `None` if the log has no such entry.
pub(crate) fn fetch_entry(
    http: &Http,
    url: &str,
    id: &EntryId,
) -> anyhow::Result<Option<serde_json::Value>> {
    let path = match id {
        EntryId::Index(index) => format!("{url}/api/v1/log/entries?logIndex={index}"),
        EntryId::Uuid(uuid) => format!("{url}/api/v1/log/entries/{uuid}"),
    };
    let answer = http.send(hyper::Method::GET, &path, &[], Vec::new(), &[404])?;
    if answer.status == 404 {
        return Ok(None);
    }
    answer.json().map(Some)
}

/// [`verify_entry`] for an answer already fetched.
pub(crate) fn verify_answer(
    http: &Http,
    url: &str,
    root: &TrustedRoot,
    anchor: &Checkpoint,
    id: &EntryId,
    answer: &serde_json::Value,
) -> anyhow::Result<IncludedEntry> {
    let (entry, checkpoint) = check_entry(answer, root)?;
    if !checkpoint.same_log(anchor) {
        bail!(
            "the entry's checkpoint is log {:?}'s, not the asked log {:?}'s",
            checkpoint.origin,
            anchor.origin
        );
    }
    match id {
        EntryId::Index(index) if *index != entry.log_index => {
            bail!(
                "asked for entry {index}, the log answered entry {}",
                entry.log_index
            )
        }
        // A UUID may carry Rekor's 16-hex-digit tree id in front.
        EntryId::Uuid(uuid) if !uuid.to_ascii_lowercase().ends_with(&entry.uuid) => {
            bail!(
                "asked for entry {uuid}, the log answered entry {}",
                entry.uuid
            )
        }
        _ => {}
    }
    // The proof's checkpoint and the anchor must be one history.
    let (older, newer) = if checkpoint.tree_size <= anchor.tree_size {
        (&checkpoint, anchor)
    } else {
        (anchor, &checkpoint)
    };
    prove_consistent(
        http,
        url,
        (older.tree_size, &older.root_hash),
        (newer.tree_size, &newer.root_hash),
    )
    .context("the entry's checkpoint is not consistent with the verified checkpoint")?;
    Ok(entry)
}

/// Checks one Rekor v1 entry answer (`{uuid: {body, logIndex, verification}}`) on its own:
/// the UUID is the body's leaf hash, and the inclusion proof leads from it to the root of the
/// proof's checkpoint, which a trusted log key signed. Returns the entry and that checkpoint.
pub(crate) fn check_entry(
    answer: &serde_json::Value,
    root: &TrustedRoot,
) -> anyhow::Result<(IncludedEntry, Checkpoint)> {
    let entries = answer
        .as_object()
        .context("the entry answer is not a JSON object")?;
    let mut entries = entries.iter();
    let (Some((uuid, entry)), None) = (entries.next(), entries.next()) else {
        bail!("the entry answer does not hold exactly one entry");
    };
    let body = entry["body"]
        .as_str()
        .and_then(|body| BASE64.decode(body).ok())
        .context("the entry's body is not base64")?;
    let leaf = tlog::leaf_hash(&body);
    let leaf_hex = hex::encode(leaf.as_bytes());
    if !uuid.to_ascii_lowercase().ends_with(&leaf_hex) {
        bail!("the entry's UUID {uuid} is not its body's leaf hash {leaf_hex}");
    }
    let log_index = entry["logIndex"]
        .as_u64()
        .context("the entry has no logIndex")?;
    let proof = &entry["verification"]["inclusionProof"];
    if proof["logIndex"].as_u64() != Some(log_index) {
        bail!("the inclusion proof is for another index than the entry's");
    }
    let proof_size = proof["treeSize"]
        .as_u64()
        .context("the inclusion proof has no treeSize")?;
    let hashes: Vec<Vec<u8>> = proof["hashes"]
        .as_array()
        .context("the inclusion proof has no hashes")?
        .iter()
        .map(|hash| {
            hash.as_str()
                .and_then(|hash| hex::decode(hash).ok())
                .context("an inclusion proof hash is not hex")
        })
        .collect::<anyhow::Result<_>>()?;
    let root_hash = proof["rootHash"]
        .as_str()
        .and_then(|root| hex::decode(root).ok())
        .context("the inclusion proof has no hex rootHash")?;
    tlog::proof::verify_inclusion_bytes(
        log_index,
        proof_size,
        leaf.as_bytes(),
        &hashes,
        &root_hash,
    )
    .map_err(|error| anyhow::anyhow!("inclusion proof of entry {log_index}: {error}"))?;
    let note = proof["checkpoint"]
        .as_str()
        .context("the inclusion proof has no checkpoint")?;
    let checkpoint = open_checkpoint(note, root)?;
    if checkpoint.tree_size != proof_size || checkpoint.root_hash != root_hash {
        bail!("the inclusion proof's checkpoint is not for the proof's tree size and root");
    }
    Ok((
        IncludedEntry {
            uuid: leaf_hex,
            log_index,
            body,
            proof_size,
        },
        checkpoint,
    ))
}

/// A one-line summary of an entry body: its kind and artifact digest, when it has one.
pub(crate) fn summary(body: &[u8]) -> String {
    match tlog::entry::Entry::parse(body) {
        Ok(entry) => {
            let digest = match &entry {
                tlog::entry::Entry::HashedRekordV001(entry) => Some(entry.digest()),
                tlog::entry::Entry::HashedRekordV002(entry) => Some(entry.digest()),
                tlog::entry::Entry::DsseV001(entry) => Some(entry.payload_hash()),
                tlog::entry::Entry::DsseV002(entry) => Some(entry.payload_hash()),
                _ => None,
            };
            let digest = digest.map_or(String::new(), |digest| {
                format!(
                    " {}:{}",
                    digest.algorithm().rekor_v1_name(),
                    hex::encode(digest.as_bytes())
                )
            });
            format!("{} {}{digest}", entry.kind(), entry.api_version())
        }
        Err(_) => format!("{} bytes", body.len()),
    }
}
