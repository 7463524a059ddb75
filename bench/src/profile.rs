//! CPU profiles of the leader over a measured window with Linux `perf`, so a report names a
//! bottleneck from evidence. Without frame pointers stacks are unreliable, so a profile is the
//! self time per symbol, grouped by crate or shared object.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, bail};
use serde::Serialize;

/// Samples per second: a prime, so sampling does not beat with periodic work.
const FREQUENCY: &str = "499";

/// Symbols kept in a profile, hottest first.
const SYMBOLS_MAX: usize = 25;

/// Where one process spent its CPU over the window.
#[derive(Debug, Serialize)]
pub(crate) struct Profile {
    /// Which process: "node 2 (leader)".
    pub(crate) process: String,
    pub(crate) seconds: f64,
    pub(crate) samples: u64,
    /// Self time by crate or shared object, percent of the samples, hottest first.
    pub(crate) components: Vec<Share>,
    /// Self time by symbol, hottest first.
    pub(crate) symbols: Vec<Share>,
}

/// One line of a profile.
#[derive(Debug, Serialize)]
pub(crate) struct Share {
    pub(crate) percent: f64,
    pub(crate) name: String,
}

/// A `perf record` under way.
pub(crate) struct Recording {
    child: Child,
    data: PathBuf,
    process: String,
    seconds: f64,
}

/// Starts sampling `pid` for `seconds`, writing perf's data to `data`.
pub(crate) fn start(
    pid: u32,
    process: String,
    seconds: f64,
    data: &Path,
) -> anyhow::Result<Recording> {
    let child = Command::new("perf")
        .args(["record", "-F", FREQUENCY, "-p", &pid.to_string(), "-o"])
        .arg(data)
        .args(["--", "sleep", &format!("{seconds:.1}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting `perf record` (Debian package linux-perf)")?;
    Ok(Recording {
        child,
        data: data.to_path_buf(),
        process,
        seconds,
    })
}

impl Recording {
    /// Waits for the recording to end and summarises it.
    pub(crate) fn finish(mut self) -> anyhow::Result<Profile> {
        let status = self.child.wait().context("waiting for perf record")?;
        if !status.success() {
            bail!("perf record failed ({status}); is perf allowed here (perf_event_paranoid)?");
        }
        let output = Command::new("perf")
            .args(["report", "--stdio", "--no-children", "--sort", "dso,symbol"])
            .args(["--percent-limit", "0.3", "-i"])
            .arg(&self.data)
            .stderr(Stdio::null())
            .output()
            .context("running perf report")?;
        if !output.status.success() {
            bail!("perf report failed ({})", output.status);
        }
        let _ = std::fs::remove_file(&self.data);
        let text = String::from_utf8_lossy(&output.stdout);
        let mut profile = parse_report(&text);
        profile.process = self.process;
        profile.seconds = self.seconds;
        Ok(profile)
    }
}

/// Parses `perf report --stdio --no-children --sort dso,symbol`.
fn parse_report(text: &str) -> Profile {
    let mut samples = 0;
    let mut symbols = Vec::new();
    let mut components: std::collections::BTreeMap<String, f64> = Default::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(count) = line.strip_prefix("# Samples: ") {
            samples = parse_count(count);
            continue;
        }
        let Some((percent, rest)) = line.split_once('%') else {
            continue;
        };
        let Ok(percent) = percent.trim().parse::<f64>() else {
            continue;
        };
        let rest = rest.trim();
        let (dso, symbol) = match rest.split_once("[k]") {
            Some((_, symbol)) => ("[kernel]", symbol.trim()),
            None => match rest.split_once("[.]") {
                Some((dso, symbol)) => (dso.trim(), symbol.trim()),
                None => (rest, ""),
            },
        };
        *components.entry(component(dso, symbol)).or_default() += percent;
        if symbols.len() < SYMBOLS_MAX {
            symbols.push(Share {
                percent,
                name: short_symbol(symbol),
            });
        }
    }
    let mut components: Vec<Share> = components
        .into_iter()
        .map(|(name, percent)| Share { percent, name })
        .collect();
    components.sort_by(|a, b| b.percent.total_cmp(&a.percent));
    Profile {
        process: String::new(),
        seconds: 0.0,
        samples,
        components,
        symbols,
    }
}

/// "10K of event 'cpu-clock:ppp'" and the like: the leading number, with its K/M suffix.
fn parse_count(text: &str) -> u64 {
    let token = text.split_whitespace().next().unwrap_or("0");
    let (digits, scale) = match token.chars().last() {
        Some('K') => (&token[..token.len() - 1], 1_000.0),
        Some('M') => (&token[..token.len() - 1], 1_000_000.0),
        _ => (token, 1.0),
    };
    // A sample count: far below u64::MAX; `as` saturates on nonsense.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let count = (digits.parse::<f64>().unwrap_or(0.0) * scale) as u64;
    count
}

/// The crate a Rust symbol belongs to, or the library or kernel for others.
fn component(dso: &str, symbol: &str) -> String {
    if dso.contains("kernel") || dso.starts_with('[') {
        return "kernel (system calls: fsync, network, scheduling)".to_owned();
    }
    if dso.starts_with("libc") || dso.starts_with("ld-linux") {
        return "libc (malloc, memcpy)".to_owned();
    }
    let trimmed = symbol.trim_start_matches(['<', '&', '*']);
    let trimmed = trimmed.strip_prefix("mut ").unwrap_or(trimmed);
    match trimmed.split_once("::") {
        Some((krate, _)) if !krate.is_empty() && !krate.contains(' ') => krate.to_owned(),
        // The only C and assembly linked into the node is aws-lc (`aws_lc_*` functions and
        // its unprefixed assembly such as `__ecp_nistz256_mul_montx` or `sha256_block_data_order`).
        _ if !symbol.is_empty() && !symbol.starts_with("0x") => {
            "aws-lc (ECDSA, SHA-256)".to_owned()
        }
        _ => format!("other ({dso})"),
    }
}

/// A symbol without its hash suffix, cut to a readable length.
fn short_symbol(symbol: &str) -> String {
    let symbol = symbol.trim();
    let symbol = match symbol.rfind("::h") {
        Some(at) if symbol[at + 3..].chars().all(|c| c.is_ascii_hexdigit()) => &symbol[..at],
        _ => symbol,
    };
    if symbol.chars().count() > 140 {
        let cut: String = symbol.chars().take(140).collect();
        format!("{cut}…")
    } else {
        symbol.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perf_report_is_summarised_by_crate_and_symbol() {
        let text = "\
# Samples: 12K of event 'cpu-clock:ppp'
#
    22.00%  cairn-node  [.] <&curve25519_dalek::backend::vector::avx2::field::FieldElement2625x4 as core::ops::Mul>::mul
     6.00%  cairn-node  [.] aws_lc_0_47_0_ecdsa_verify
     5.00%  cairn-node  [.] __ecp_nistz256_mul_montx                                   
     5.50%  libc.so.6   [.] __memmove_avx512_unaligned_erms
     4.00%  [kernel.kallsyms]  [k] finish_task_switch.isra.0
     3.00%  cairn-node  [.] redb::tree_store::page_store::cached_file::PagedCachedFile::flush
     2.00%  cairn-node  [.] redb::transactions::WriteTransaction::commit_inner
";
        let profile = parse_report(text);
        assert_eq!(profile.samples, 12_000);
        let names: Vec<&str> = profile.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "curve25519_dalek",
                "aws-lc (ECDSA, SHA-256)",
                "libc (malloc, memcpy)",
                "redb",
                "kernel (system calls: fsync, network, scheduling)"
            ]
        );
        assert!((profile.components[3].percent - 5.0).abs() < 1e-9);
        assert_eq!(profile.symbols.len(), 7);
        assert_eq!(profile.symbols[2].name, "__ecp_nistz256_mul_montx");
        assert_eq!(
            profile.symbols[5].name,
            "redb::tree_store::page_store::cached_file::PagedCachedFile::flush"
        );
    }
}
