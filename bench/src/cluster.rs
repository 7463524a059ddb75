//! The cluster under test: one started with `cairn-node dev` (which keeps bootstrapping the
//! node's business and writes `cluster.json` once ready), or an existing one; and the CPU,
//! memory and metrics of its processes.

use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;

/// What the benchmark needs to know about a cluster.
#[derive(Debug, Default)]
pub(crate) struct Cluster {
    pub(crate) urls: Vec<String>,
    /// Node process ids, when known (local clusters and `--cluster-json`), for CPU and RSS.
    pub(crate) pids: Vec<u32>,
    /// The artifact log's C2SP verifier key.
    pub(crate) verifier_key: String,
    /// The sequencer settings of node 1's config, when readable.
    pub(crate) sequencer: Option<serde_json::Value>,
    /// The C2SP tlog-policy publication needs (log key, witnesses, quorum), for a cluster with
    /// witnessing: answers count only if their checkpoint meets it.
    pub(crate) witness_policy: Option<String>,
    /// The `cairn-node dev` this process started, stopped on drop (before `dev` removes its
    /// directory: fields drop in order).
    pub(crate) process: Option<node::dev_process::DevProcess>,
    /// Set for a cluster this process started: its directory, removed on drop unless kept.
    dev: Option<Started>,
}

/// The artifact log serves the Rekor v2 API (and is the one the scale benchmark grows).
pub(crate) const ARTIFACT_LOG: &str = "artifacts";

impl Cluster {
    /// Runs `cairn-node dev` in `dir`: creates the cluster there, or resumes the one it holds
    /// with its data (which must have been made with the same `nodes` and `base_port`), with
    /// environment variables for it and its nodes (`CAIRN_*`), witnessed by the witnesses of
    /// `witness_policy` if given (`dev --witness-policy`). The directory is removed when the
    /// cluster stops unless `keep`. Waiting for the cluster blocks this runtime thread only.
    pub(crate) fn start_in(
        node_bin: &Path,
        (nodes, base_port): (u16, u16),
        dir: &Path,
        env_overrides: &[(&str, &str)],
        witness_policy: Option<&Path>,
        keep: bool,
    ) -> anyhow::Result<Cluster> {
        let mut env: Vec<(String, String)> = vec![("RUST_LOG".into(), "warn".into())];
        env.extend(env_overrides.iter().map(|&(k, v)| (k.into(), v.into())));
        let options = node::dev_process::DevOptions {
            base_port,
            env,
            witness_policy: witness_policy.map(Path::to_path_buf),
            log: dir.join("dev.log"),
            ready_within: Duration::from_secs(600),
            ..node::dev_process::DevOptions::new(node_bin, dir, nodes)
        };
        let process = tokio::task::block_in_place(|| node::dev_process::DevProcess::start(options))
            .with_context(|| format!("see also {}/node-*/node.log", dir.display()))?;
        let mut cluster = Cluster::from_json(&dir.join("cluster.json"))?;
        if witness_policy.is_some() {
            // What `dev` made of it: the same with a `log` line per log.
            let policy = std::fs::read_to_string(dir.join("witness-policy.txt"))?;
            cluster.witness_policy = Some(policy);
        }
        cluster.dev = Some(Started::new(dir.to_path_buf(), keep));
        cluster.process = Some(process);
        Ok(cluster)
    }

    /// A running cluster described by a `cairn-node dev` cluster.json.
    pub(crate) fn from_json(path: &Path) -> anyhow::Result<Cluster> {
        let json = node::dev_process::read_cluster_json(path)?;
        let nodes = json["nodes"].as_array().map_or(&[][..], Vec::as_slice);
        let verifier_key = (artifact_key(&json))
            .with_context(|| format!("{}: no {ARTIFACT_LOG} log", path.display()))?;
        let config = nodes.first().and_then(|node| node["config"].as_str());
        let file = config.and_then(|config| node::config::NodeFile::load(Path::new(config)).ok());
        let sequencer = file.and_then(|file| serde_json::to_value(file.sequencer).ok());
        let pids = nodes
            .iter()
            .filter_map(|node| u32::try_from(node["pid"].as_u64()?).ok());
        Ok(Cluster {
            urls: (nodes
                .iter()
                .filter_map(|node| Some(node["url"].as_str()?.to_owned())))
            .collect(),
            pids: pids.collect(),
            verifier_key: verifier_key.to_owned(),
            sequencer,
            ..Cluster::default()
        })
    }

    /// The artifact log's key as node `url` lists it in `/logs`, which trusts that node.
    pub(crate) async fn served_key(url: &str) -> anyhow::Result<String> {
        let logs = crate::net::get(&format!("{}/logs", url.trim_end_matches('/'))).await?;
        let logs = serde_json::from_slice(&logs)?;
        let key = artifact_key(&logs).context("the node lists no artifacts log")?;
        eprintln!("warning: trusting the log key served by {url} (pass --verifier-key to pin it)");
        Ok(key.to_owned())
    }
}

/// The artifact log's C2SP verifier key in a `/logs` answer (or cluster.json: the same list).
fn artifact_key(logs: &serde_json::Value) -> Option<&str> {
    let mut logs = logs["logs"].as_array().into_iter().flatten();
    logs.find(|log| log["name"] == ARTIFACT_LOG)?["verifier_key"].as_str()
}

/// A base port for a `cairn-node dev` cluster of `nodes` whose ports are free now.
pub(crate) fn free_base_port(nodes: u16) -> anyhow::Result<u16> {
    node::dev_process::free_base_port(nodes).context("no free ports for a dev cluster")
}

/// Processes this benchmark started and their data directory: on drop the processes are
/// stopped (SIGTERM, so they stop cleanly; killed after 15 s) and the directory removed unless
/// kept.
#[derive(Debug)]
pub(crate) struct Started {
    pub(crate) children: Vec<Child>,
    pub(crate) dir: PathBuf,
    pub(crate) keep: bool,
}

impl Started {
    pub(crate) fn new(dir: PathBuf, keep: bool) -> Started {
        Started {
            children: Vec::new(),
            dir,
            keep,
        }
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let children = self.children.iter_mut().collect();
        node::process::stop_children(children, Duration::from_secs(15));
        if self.keep {
            eprintln!("data kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `count` distinct free ports on 127.0.0.1, bound together so none repeats and released just
/// before the processes bind them.
pub(crate) fn free_ports(count: usize) -> anyhow::Result<Vec<u16>> {
    let listeners: Vec<std::net::TcpListener> = (0..count)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let ports = listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()));
    ports.collect()
}

/// `dir` in `parent`, emptied: where a started cluster keeps its data.
pub(crate) fn fresh_dir(parent: &Path, dir: &str) -> anyhow::Result<PathBuf> {
    let dir = parent.join(format!("cairn-bench-{dir}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Finds the binary `name`: next to this executable (same cargo target directory), else on
/// PATH; `hint` says how to get it.
pub(crate) fn find_binary(name: &str, hint: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing = || {
        format!(
            "{name} not found next to {} or on PATH: {hint}",
            exe.display()
        )
    };
    (exe.parent().into_iter().map(Path::to_path_buf))
        .chain(std::env::split_paths(&path))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .with_context(missing)
}

/// The kernel reports /proc CPU times in USER_HZ, which Linux fixes at 100 on every
/// architecture this runs on (it is part of the /proc ABI, independent of CONFIG_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU ticks (user + system), resident and peak resident KiB of one process, from /proc;
/// `None` if the process is gone.
fn sample_process(pid: &str) -> Option<[u64; 3]> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last
    // ')'; fields 14 and 15 (utime, stime) are then at positions 11 and 12.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |name: &str| {
        let line = status.lines().find_map(|line| line.strip_prefix(name));
        line.and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some([ticks, kib("VmRSS:"), kib("VmHWM:")])
}

/// Busy CPU ticks of the whole machine (the `cpu` line of /proc/stat): to tell how much of it
/// other work (another engineer's build) took.
fn sample_machine() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let idle = ticks.get(3)? + ticks.get(4).unwrap_or(&0);
    Some(ticks.iter().take(8).sum::<u64>().saturating_sub(idle))
}

/// CPU and memory samples of some processes, of this benchmark and of the machine.
#[derive(Debug)]
pub(crate) struct Sample {
    processes: Vec<Option<[u64; 3]>>,
    bench: Option<[u64; 3]>,
    machine: Option<u64>,
}

impl Sample {
    pub(crate) fn take(pids: &[u32]) -> Sample {
        let processes = pids
            .iter()
            .map(|pid| sample_process(&pid.to_string()))
            .collect();
        let (bench, machine) = (sample_process("self"), sample_machine());
        Sample {
            processes,
            bench,
            machine,
        }
    }
}

/// CPU use and memory of one process over the measured window.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ProcessUsage {
    pub(crate) name: String,
    /// Percent of one core (200% = both cores of a 2-core machine).
    pub(crate) cpu_percent: f64,
    pub(crate) rss_mib: f64,
    pub(crate) peak_rss_mib: f64,
}

/// Usage over a window, from two samples.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    pub(crate) processes: Vec<ProcessUsage>,
    pub(crate) bench: Option<ProcessUsage>,
    /// The whole machine's busy CPU, percent of one core.
    pub(crate) machine: Option<f64>,
    /// The part of it neither the sampled processes nor this benchmark used (other builds and
    /// tests); only meaningful when every process is known.
    pub(crate) other: Option<f64>,
}

impl Usage {
    /// Usage between two samples `window` apart; process i is named `name` i+1.
    pub(crate) fn between(before: &Sample, after: &Sample, window: Duration, name: &str) -> Usage {
        let percent =
            |ticks: u64| ticks as f64 / TICKS_PER_SECOND / window.as_secs_f64().max(1e-9) * 100.0;
        let usage = |name: String, before: Option<[u64; 3]>, after: Option<[u64; 3]>| {
            let ([before, ..], [ticks, rss, peak]) = (before?, after?);
            let (rss_mib, peak_rss_mib) = (rss as f64 / 1024.0, peak as f64 / 1024.0);
            let cpu_percent = percent(ticks.saturating_sub(before));
            Some(ProcessUsage {
                name,
                cpu_percent,
                rss_mib,
                peak_rss_mib,
            })
        };
        let processes: Vec<ProcessUsage> = (before.processes.iter().zip(&after.processes))
            .enumerate()
            .filter_map(|(i, (before, after))| usage(format!("{name}{}", i + 1), *before, *after))
            .collect();
        let bench = usage("cairn-bench".into(), before.bench, after.bench);
        let machine =
            (before.machine.zip(after.machine)).map(|(a, b)| percent(b.saturating_sub(a)));
        let other = machine.filter(|_| !processes.is_empty()).map(|machine| {
            let ours = processes
                .iter()
                .chain(&bench)
                .map(|u| u.cpu_percent)
                .sum::<f64>();
            (machine - ours).max(0.0)
        });
        Usage {
            processes,
            bench,
            machine,
            other,
        }
    }
}

/// One Prometheus histogram as scraped: cumulative bucket counts, sum and count.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct PromHistogram {
    /// (upper bound, cumulative count), in exposition order (ascending, +Inf last).
    pub(crate) buckets: Vec<(f64, f64)>,
    pub(crate) sum: f64,
    pub(crate) count: f64,
}

impl PromHistogram {
    /// Parses `name` out of Prometheus/OpenMetrics text; `None` if absent.
    pub(crate) fn parse(text: &str, name: &str) -> Option<PromHistogram> {
        let mut histogram = PromHistogram::default();
        let mut found = false;
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(name) else {
                continue;
            };
            let value = |text: &str| text.split_whitespace().last()?.parse::<f64>().ok();
            if let Some(rest) = rest.strip_prefix("_bucket{le=\"") {
                let (bound, tail) = rest.split_once('"')?;
                let bound = if bound == "+Inf" {
                    f64::INFINITY
                } else {
                    bound.parse().ok()?
                };
                histogram.buckets.push((bound, value(tail)?));
                found = true;
            } else if rest.starts_with("_sum") {
                histogram.sum = value(rest)?;
            } else if rest.starts_with("_count") {
                histogram.count = value(rest)?;
            }
        }
        found.then_some(histogram)
    }

    /// What happened between two scrapes of the same node.
    pub(crate) fn since(&self, earlier: &PromHistogram) -> PromHistogram {
        PromHistogram {
            buckets: self
                .buckets
                .iter()
                .zip(earlier.buckets.iter().chain(std::iter::repeat(&(0.0, 0.0))))
                .map(|((bound, now), (_, before))| (*bound, now - before))
                .collect(),
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        }
    }

    pub(crate) fn mean(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// The upper bound of the bucket holding quantile `q`: an upper estimate, as precise as
    /// the buckets.
    pub(crate) fn quantile_bound(&self, q: f64) -> f64 {
        let rank = q * self.count;
        self.buckets
            .iter()
            .find(|(_, cumulative)| *cumulative >= rank && *cumulative > 0.0)
            .map_or(0.0, |(bound, _)| *bound)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const SCRAPE: &str = "# HELP cairn_batch_leaves Leaves per proposed batch.\n\
        # TYPE cairn_batch_leaves histogram\n\
        cairn_batch_leaves_sum 1000.0\n\
        cairn_batch_leaves_count 10\n\
        cairn_batch_leaves_bucket{le=\"1.0\"} 0\n\
        cairn_batch_leaves_bucket{le=\"64.0\"} 2\n\
        cairn_batch_leaves_bucket{le=\"256.0\"} 10\n\
        cairn_batch_leaves_bucket{le=\"+Inf\"} 10\n\
        cairn_commit_seconds_sum 0.5\n";

    #[test]
    fn histograms_parse_and_subtract() {
        let now = PromHistogram::parse(SCRAPE, "cairn_batch_leaves").unwrap();
        assert_eq!(now.count, 10.0);
        assert_eq!(now.buckets.len(), 4);
        assert!((now.mean() - 100.0).abs() < 1e-9);
        assert_eq!(now.quantile_bound(0.5), 256.0);
        assert_eq!(now.quantile_bound(0.1), 64.0);
        let before = PromHistogram {
            buckets: vec![(1.0, 0.0), (64.0, 2.0), (256.0, 2.0), (f64::INFINITY, 2.0)],
            sum: 40.0,
            count: 2.0,
        };
        let delta = now.since(&before);
        assert_eq!(delta.count, 8.0);
        assert_eq!(delta.quantile_bound(0.5), 256.0);
        assert!(PromHistogram::parse(SCRAPE, "cairn_missing").is_none());
    }

    #[test]
    fn this_process_can_be_sampled() {
        let [_, rss, peak] = sample_process("self").unwrap();
        assert!(rss > 0 && peak >= rss);
    }
}
