//! Every inclusion and consistency vector of transparency-dev/merkle (copied into
//! `testdata/merkle/`, see its README): each `wantErr` case must be rejected, every other case
//! accepted, through the byte-level verifiers that take input straight off the wire.
//!
//! A missing or short vector folder fails the test: a vector suite that silently finds nothing
//! would pass while checking nothing.

// Test helpers may unwrap: a panic there is a failed test.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use tlog::proof::{verify_consistency_bytes, verify_inclusion_bytes};

/// The files in the copied suite; fewer means the copy is damaged.
const INCLUSION_FILES: usize = 98;
const CONSISTENCY_FILES: usize = 98;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct InclusionCase {
    leaf_idx: u64,
    tree_size: u64,
    root: Option<String>,
    leaf_hash: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsistencyCase {
    size1: u64,
    size2: u64,
    root1: Option<String>,
    root2: Option<String>,
    proof: Option<Vec<String>>,
    desc: String,
    want_err: bool,
}

fn json_files(folder: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata/merkle")
        .join(folder);
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("vector folder {} unreadable: {e}", dir.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "json") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn bytes(text: &Option<String>) -> Vec<u8> {
    text.as_deref()
        .map(|t| BASE64.decode(t).unwrap())
        .unwrap_or_default()
}

fn proof(hashes: &Option<Vec<String>>) -> Vec<Vec<u8>> {
    hashes
        .iter()
        .flatten()
        .map(|h| BASE64.decode(h).unwrap())
        .collect()
}

#[test]
fn inclusion_vectors() {
    let files = json_files("inclusion");
    assert_eq!(
        files.len(),
        INCLUSION_FILES,
        "inclusion vector folder damaged"
    );
    let mut rejected = 0;
    for file in files {
        let case: InclusionCase =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let result = verify_inclusion_bytes(
            case.leaf_idx,
            case.tree_size,
            &bytes(&case.leaf_hash),
            &proof(&case.proof),
            &bytes(&case.root),
        );
        assert_eq!(
            result.is_err(),
            case.want_err,
            "{}: {} gave {result:?}",
            file.display(),
            case.desc
        );
        rejected += usize::from(case.want_err);
    }
    // Most of the suite is negative cases; make sure they were really exercised.
    assert!(rejected > 80, "only {rejected} rejection cases ran");
}

#[test]
fn consistency_vectors() {
    let files = json_files("consistency");
    assert_eq!(
        files.len(),
        CONSISTENCY_FILES,
        "consistency vector folder damaged"
    );
    let mut rejected = 0;
    for file in files {
        let case: ConsistencyCase =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let result = verify_consistency_bytes(
            case.size1,
            case.size2,
            &proof(&case.proof),
            &bytes(&case.root1),
            &bytes(&case.root2),
        );
        assert_eq!(
            result.is_err(),
            case.want_err,
            "{}: {} gave {result:?}",
            file.display(),
            case.desc
        );
        rejected += usize::from(case.want_err);
    }
    assert!(rejected > 80, "only {rejected} rejection cases ran");
}

/// The roots of the standard eight-leaf tree (transparency-dev/merkle `testonly/constants.go`,
/// Apache-2.0), grown leaf by leaf.
#[test]
fn standard_eight_leaf_roots() {
    let leaves: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let mut tree = tlog::Tree::new();
    for (leaf, root) in leaves.iter().zip(roots) {
        tree.append(tlog::leaf_hash(leaf), |_, _| {}).unwrap();
        assert_eq!(tree.root().to_hex(), root, "size {}", tree.size());
    }
}
