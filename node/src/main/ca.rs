//! `cairn-node ca prepare`: the next CA, SCT key and timestamp authority of a cluster
//! directory, taking over at a given time; `cairn-node ca promote`: once that time has passed,
//! the next becomes the current and the replaced material is kept, public parts only.

use std::path::PathBuf;

use anyhow::bail;
use clap::{Args, Subcommand};
use node::env::Clock as _;

/// Rotate the keyless CA's intermediate, the certificate log's SCT key and the timestamp
/// authority's signing key.
///
/// `cairn-node ca prepare --dir DIR --from 2026-12-08T00:00:00Z` writes a new root and
/// intermediate in DIR/ca-2/, a new SCT key DIR/keys/ct-2.key and a new TSA in DIR/tsa-2/, and
/// adds `[ca.next]` and `[ca.tsa.next]` (with that `from`) to every DIR/node-*/config.toml.
/// Copy them to the machines and restart the nodes one at a time. From then on the trusted root
/// lists the old and the new material, the old valid until `from` (the old intermediate a
/// certificate's lifetime, 20 minutes, longer), the new from `from`; when a node's clock reaches
/// `from` it issues and timestamps with the new keys. Pick a `from` late enough for clients to
/// fetch the new trusted root first.
///
/// Once `from` has passed, `cairn-node ca promote --dir DIR` moves `[ca.next]` into `[ca]` (and
/// `[ca.tsa.next]` into `[ca.tsa]`) and keeps the replaced CA, SCT key and TSA as
/// `[[ca.retired]]` and `[[ca.tsa.retired]]` entries (certificates and public keys only, with
/// the window they signed in), which the trusted root keeps listing so that what they signed
/// still verifies. Restart the nodes one at a time again; the next `ca prepare` can follow.
///
/// See docs/operations.md, "Rotating a log and its key".
#[derive(Args, Debug)]
pub(crate) struct CaArgs {
    #[command(subcommand)]
    command: CaCommand,
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Write the next CA, SCT key and TSA and add them to every node config of a cluster
    /// directory (restart the nodes afterwards).
    Prepare {
        /// The cluster directory `cairn-node init` wrote.
        #[arg(long)]
        dir: PathBuf,
        /// When the new keys take over: an RFC 3339 UTC time (2026-12-08T00:00:00Z), in the
        /// future.
        #[arg(
            long,
            conflicts_with = "in_seconds",
            required_unless_present = "in_seconds"
        )]
        from: Option<String>,
        /// Or: in how many seconds from now they take over.
        #[arg(long = "in", value_name = "SECONDS")]
        in_seconds: Option<u64>,
    },
    /// Once the prepared rotation's `from` has passed: make the next CA, SCT key and TSA the
    /// current ones in every node config of a cluster directory, the replaced ones retired
    /// (public parts only, still in the trusted root); restart the nodes afterwards.
    Promote {
        /// The cluster directory `cairn-node init` wrote.
        #[arg(long)]
        dir: PathBuf,
    },
}

pub(crate) fn run(args: CaArgs) -> anyhow::Result<()> {
    match args.command {
        CaCommand::Prepare {
            dir,
            from,
            in_seconds,
        } => {
            let now_ms = node::env::SystemClock.now_unix_ms();
            let from = match (from, in_seconds) {
                (Some(from), _) => from,
                (None, Some(seconds)) => {
                    let at = now_ms.saturating_add(seconds.saturating_mul(1000));
                    match node::config::format_utc(at) {
                        Some(at) => at,
                        None => bail!("--in {seconds}: out of range"),
                    }
                }
                (None, None) => bail!("give --from TIME or --in SECONDS"),
            };
            let prepared = node::provision::prepare_ca_rotation(&dir, &from, now_ms)?;
            println!("the next CA and keys take over at {}", prepared.from);
            println!(
                "CA (root, intermediate, key): {}",
                prepared.ca_dir.display()
            );
            println!("SCT key: {}", prepared.ct_key_file.display());
            if let Some(tsa) = &prepared.tsa_dir {
                println!("TSA (root, signing certificate, key): {}", tsa.display());
            }
            for config in &prepared.configs {
                println!("added to {}", config.display());
            }
            println!(
                "next: copy these to each machine and restart the nodes one at a time before {}",
                prepared.from
            );
            Ok(())
        }
        CaCommand::Promote { dir } => {
            let now_ms = node::env::SystemClock.now_unix_ms();
            let promoted = node::provision::promote_ca_rotation(&dir, now_ms)?;
            for config in &promoted.configs {
                println!("promoted in {}", config.display());
            }
            for key in &promoted.public_keys {
                println!("retired SCT key's public key: {}", key.display());
            }
            println!(
                "no config names these private keys any more; once every node runs the new \
                 configs, they may be deleted:"
            );
            for key in &promoted.retired_private_keys {
                println!("  {}", key.display());
            }
            println!("next: copy the configs to each machine and restart the nodes one at a time");
            Ok(())
        }
    }
}
