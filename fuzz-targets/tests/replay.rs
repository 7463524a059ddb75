//! Replays the saved fuzz corpus (`fuzz/corpus/<target>/*`) and the generated seeds through
//! every target: each must return, never panic. This is how CI checks the fuzzers' findings
//! stay fixed without the fuzzer's toolchain (`scripts/fuzz` runs the fuzzer itself).

use std::path::Path;
use std::time::Instant;

#[test]
fn every_corpus_file_replays_without_a_panic() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let started = Instant::now();
    let mut replayed = 0;
    for (name, target) in fuzz_targets::TARGETS {
        let dir = corpus.join(name);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| entry.expect("a readable directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no corpus for target {name}");
        for file in files {
            let data =
                std::fs::read(&file).unwrap_or_else(|error| panic!("{}: {error}", file.display()));
            // A panic here names the file through this message's absence: print it first.
            eprintln!("{name}: {}", file.display());
            target(&data);
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} files in {:?}", started.elapsed());
}

#[test]
fn every_target_has_a_corpus_directory_and_no_other_exists() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    let mut on_disk: Vec<String> = std::fs::read_dir(&corpus)
        .expect("fuzz/corpus exists")
        .map(|entry| {
            entry
                .expect("a readable directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    on_disk.sort();
    let mut targets: Vec<String> = fuzz_targets::TARGETS
        .iter()
        .map(|(name, _)| (*name).to_owned())
        .collect();
    targets.sort();
    assert_eq!(on_disk, targets);
}

#[test]
fn generated_seeds_replay_and_pass_their_checks() {
    use fuzz_targets::seeds;
    let verifiers = tlog::keys::Verifiers::from_verifiers([seeds::log_signer().verifier()])
        .expect("one verifier");
    let entry = tlog::leaf_hash(seeds::LEAVES[0]);
    for (name, file, data) in seeds::seeds() {
        let target = fuzz_targets::target(name).unwrap_or_else(|| panic!("no target {name}"));
        target(&data);
        // The seeds are valid and signed with the targets' keys, so the fuzzer starts past the
        // parsers and the signature checks.
        let text = std::str::from_utf8(&data);
        let accepted = match name {
            "note" => tlog::keys::open(&data, &verifiers).is_ok(),
            "checkpoint" => tlog::checkpoint::open(&data, &verifiers).is_ok(),
            "cosignature" => tlog::note::Note::parse(&data).is_ok_and(|note| {
                note.signatures().iter().any(|signature| {
                    seeds::witness_verifier()
                        .verify(note.text(), &signature.signature)
                        .is_ok()
                })
            }),
            "tlog_proof" => tlog::tlog_proof::TlogProof::parse(&data)
                .is_ok_and(|proof| proof.verify(&entry, &verifiers).is_ok()),
            "policy" => text.is_ok_and(|text| {
                tlog::policy::Policy::parse(text).is_ok_and(|policy| {
                    policy
                        .verify_checkpoint(seeds::signed_checkpoint().as_bytes())
                        .is_ok()
                })
            }),
            "vkey" => text.is_ok_and(|text| tlog::keys::Verifier::parse(text).is_ok()),
            "witness_request" => witness::request::AddCheckpoint::parse(&data).is_ok(),
            "id_token" => matches!(fuzz_targets::verify_id_token(&data), Some(Ok(_))),
            "snapshot_descriptor" => node::storage::snapshot::split_data(&data).is_ok(),
            _ => true,
        };
        assert!(
            accepted,
            "generated seed {name}/{file} does not pass its checks"
        );
    }
}
