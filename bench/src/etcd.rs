//! `cairn-bench peer`: Cairn's verified appends, then etcd's puts on the same machine and disk
//! with the same members, clients and payload size (Debian's `etcd-server`, started on loopback
//! under Cairn's data directory, fsync on). A put counts if its revision is above every one its
//! client saw; after the run every [`READBACK_EVERY`]th put is read back from another member
//! and must hold the value written at the revision acknowledged.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::cluster::Started;
use crate::run::{self, Context, Done, Failure, Phases, RunArgs, Target, Workload};
use crate::stats::{number, per_second};

/// Every `READBACK_EVERY`th put of each client is read back after the run.
pub(crate) const READBACK_EVERY: u64 = 64;

/// How to install etcd when it is missing.
const INSTALL_HINT: &str =
    "install Debian's etcd server: `apt-get install -y etcd-server` (or pass --etcd-bin)";

/// `etcd --version`'s first line, e.g. "etcd Version: 3.4.23".
fn etcd_version(bin: &Path) -> anyhow::Result<String> {
    let output = Command::new(bin)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version: {INSTALL_HINT}", bin.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(text.lines().next().unwrap_or("unknown").trim().to_string())
}

/// Processes named `etcd` that this benchmark did not start (for example the service a package
/// install started), so the report can say the machine had them.
fn foreign_etcd_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "etcd")
        })
        .collect()
}

/// A running etcd cluster this process started; stops its members (and removes their data
/// unless kept) on drop.
#[derive(Debug)]
pub(crate) struct EtcdCluster {
    /// Client URLs, member i at position i.
    pub(crate) endpoints: Vec<String>,
    /// The members' processes and data directory, stopped and removed (unless kept) on drop.
    pub(crate) processes: Started,
}

impl EtcdCluster {
    /// Starts `members` etcd members on loopback under a fresh directory where `run` keeps
    /// its clusters, and waits until the cluster answers a write.
    pub(crate) async fn start(
        bin: &Path,
        members: usize,
        run: &RunArgs,
    ) -> anyhow::Result<EtcdCluster> {
        let dir = crate::cluster::fresh_dir(&run.parent(), "etcd")?;
        let ports = crate::cluster::free_ports(members * 2)?;
        let client_url = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i]);
        let peer_url = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
        let initial: Vec<String> = (0..members)
            .map(|i| format!("m{}={}", i + 1, peer_url(i)))
            .collect();
        let initial_cluster = initial.join(",");
        let mut cluster = EtcdCluster {
            endpoints: (0..members).map(client_url).collect(),
            processes: Started::new(dir.clone(), run.keep_data),
        };
        for i in 0..members {
            let name = format!("m{}", i + 1);
            let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
            let (client, peer) = (client_url(i), peer_url(i));
            let settings = format!(
                "--name {name} --listen-client-urls {client} --advertise-client-urls {client} \
                 --listen-peer-urls {peer} --initial-advertise-peer-urls {peer} \
                 --initial-cluster {initial_cluster} --initial-cluster-token cairn-bench-{} \
                 --initial-cluster-state new --logger zap --log-level warn",
                std::process::id()
            );
            let child = Command::new(bin)
                .args(settings.split_whitespace())
                .arg("--data-dir")
                .arg(dir.join(&name))
                // Debian's package reads defaults from the environment (ETCD_*); clear the
                // ones that would change what we measure.
                .env_remove("ETCD_UNSAFE_NO_FSYNC")
                .env_remove("ETCD_DATA_DIR")
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .with_context(|| format!("starting {}: {INSTALL_HINT}", bin.display()))?;
            cluster.processes.children.push(child);
        }
        cluster.wait_ready().await?;
        Ok(cluster)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let (started, dir) = (Instant::now(), self.processes.dir.display().to_string());
        loop {
            for (m, child) in (1..).zip(self.processes.children.iter_mut()) {
                if let Some(status) = child.try_wait()? {
                    bail!("etcd member m{m} exited ({status}); see {dir}/m{m}.log");
                }
            }
            let mut ready = 0;
            for endpoint in &self.endpoints {
                ready += usize::from(put_once(endpoint).await.is_ok());
            }
            if ready == self.endpoints.len() {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                bail!("etcd cluster not ready after 60 s; see {dir}/m*.log");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn put_once(endpoint: &str) -> anyhow::Result<()> {
    let options = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(2));
    let mut client = etcd_client::Client::connect([endpoint], Some(options)).await?;
    client.put("cairn-bench/ready", "1", None).await?;
    Ok(())
}

/// The value of put `sequence` by client `client`: `bytes` long, distinct per put (the first
/// 16 bytes are the client and sequence), the rest a fixed filler, so a read-back can rebuild
/// it without storing it.
pub(crate) fn value(client: usize, sequence: u64, bytes: usize) -> Vec<u8> {
    let mut value = Vec::with_capacity(bytes.max(16));
    value.extend_from_slice(&(client as u64).to_be_bytes());
    value.extend_from_slice(&sequence.to_be_bytes());
    let mut filler = 0x5eu8;
    while value.len() < bytes {
        filler = filler.wrapping_mul(31).wrapping_add(7);
        value.push(filler);
    }
    value.truncate(bytes.max(16));
    value
}

fn key(client: usize, sequence: u64, run: &str) -> String {
    format!("cairn-bench/{run}/{client:05}/{sequence:012}")
}

/// The columns of an etcd run, as `peer` prints it.
pub(crate) const COLUMNS: &str = "members=members | clients=clients \
    | puts/s=puts_per_second:0 | p50 ms=latency.p50_ms:1 | p99 ms=latency.p99_ms:1 \
    | errors=errors:sum | read back=readback_checked | wrong=readback_failed \
    | member CPU %=member_usage:cpu | other CPU %=other_cpu_percent:0";

/// Closed-loop puts of `value_bytes` values; client i is connected to member i mod n only, as
/// Cairn's client i talks to node i mod n.
struct PutLoad {
    endpoints: Vec<String>,
    /// A random tag so runs against one cluster never write the same key.
    run: String,
    value_bytes: usize,
    /// (client, sequence, revision) of every READBACK_EVERY-th acknowledged put.
    samples: Mutex<Vec<(usize, u64, i64)>>,
}

/// A client: its connection, id, last put's sequence number and the highest revision it saw.
type PutClient = (etcd_client::Client, usize, u64, i64);

impl Workload for PutLoad {
    type Client = PutClient;
    type Answer = etcd_client::PutResponse;
    const PAUSE_AFTER_ERROR: Duration = Duration::from_millis(50);

    async fn prepare(&self, id: usize) -> anyhow::Result<PutClient> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(5))
            .with_timeout(Duration::from_secs(30));
        let endpoint = &self.endpoints[id % self.endpoints.len()];
        let client = etcd_client::Client::connect([endpoint.as_str()], Some(options))
            .await
            .with_context(|| format!("connecting to etcd at {endpoint}"))?;
        Ok((client, id, 0, 0))
    }

    async fn issue(
        &self,
        (client, id, sequence, _): &mut PutClient,
        _: usize,
        _: &Context<'_>,
    ) -> Result<etcd_client::PutResponse, Failure> {
        *sequence += 1;
        let (key, value) = (
            key(*id, *sequence, &self.run),
            value(*id, *sequence, self.value_bytes),
        );
        client
            .put(key, value, None)
            .await
            .map_err(|_| Failure::from("grpc error"))
    }

    fn verify(
        &self,
        (_, id, sequence, last_revision): &mut PutClient,
        response: etcd_client::PutResponse,
    ) -> Result<Done, String> {
        match response.header().map(etcd_client::ResponseHeader::revision) {
            Some(revision) if revision > *last_revision => {
                *last_revision = revision;
                if sequence.is_multiple_of(READBACK_EVERY) {
                    run::lock(&self.samples).push((*id, *sequence, revision));
                }
                Ok(Done::read("puts"))
            }
            Some(_) => Err("verify: revision did not grow".into()),
            None => Err("verify: no header".into()),
        }
    }
}

/// Runs `clients` closed-loop clients against the cluster for warm-up plus duration, then
/// reads a sample of the puts back.
pub(crate) async fn run_puts(
    cluster: &EtcdCluster,
    mut phases: Phases,
    value_bytes: usize,
) -> anyhow::Result<serde_json::Value> {
    let load = Arc::new(PutLoad {
        endpoints: cluster.endpoints.clone(),
        run: crate::workload::random_tag(),
        value_bytes,
        samples: Mutex::new(Vec::new()),
    });
    // etcd has no Cairn `/metrics` to find a leader to profile by.
    phases.profile = false;
    let pids: Vec<u32> = cluster.processes.children.iter().map(Child::id).collect();
    let target = Target {
        urls: &[],
        pids: &pids,
        name: "etcd m",
    };
    let measured = run::measure(&load, &phases, target).await?;
    let window = measured.window;
    let (ok, latencies) = measured.total(|_| true);
    let samples = std::mem::take(&mut *run::lock(&load.samples));
    let (readback_checked, readback_failed) =
        read_back(cluster, &load.run, value_bytes, &samples).await?;
    if readback_failed > 0 {
        bail!(
            "etcd read-back: {readback_failed} of {readback_checked} sampled puts do not hold \
             the value written at the revision acknowledged"
        );
    }
    // `readback_checked`: puts read back after the run (value and revision checked);
    // `readback_failed`: how many of them disagreed.
    Ok(measured.with(serde_json::json!({
        "members": cluster.endpoints.len(), "value_bytes": value_bytes,
        "key_bytes": key(0, 0, &load.run).len(), "puts_per_second": per_second(ok, window),
        "acknowledged_puts": ok, "latency": latencies.summary(),
        "readback_checked": readback_checked, "readback_failed": readback_failed,
        "member_usage": measured.processes,
    })))
}

/// Reads the sampled puts back, each from a member other than the one it was written through
/// (a linearizable read, etcd's default); returns (checked, failed).
async fn read_back(
    cluster: &EtcdCluster,
    run: &str,
    value_bytes: usize,
    samples: &[(usize, u64, i64)],
) -> anyhow::Result<(u64, u64)> {
    let mut readers = Vec::new();
    for endpoint in &cluster.endpoints {
        readers.push(etcd_client::Client::connect([endpoint.as_str()], None).await?);
    }
    let members = readers.len();
    let (mut checked, mut failed) = (0, 0);
    for &(client, sequence, revision) in samples {
        let reader = &mut readers[(client + 1) % members];
        let answer = reader.get(key(client, sequence, run), None).await?;
        checked += 1;
        let good = answer.kvs().first().is_some_and(|kv| {
            kv.value() == value(client, sequence, value_bytes).as_slice()
                && kv.mod_revision() == revision
        });
        failed += u64::from(!good);
    }
    Ok((checked, failed))
}

/// The `peer` subcommand's arguments (also the settings `cairn-bench report` passes).
#[derive(clap::Args, Clone, Debug)]
#[command(mut_arg("nodes", |arg| arg.long("members").value_name("MEMBERS")
    .help("Cairn nodes and etcd members")))]
pub(crate) struct PeerArgs {
    #[command(flatten)]
    pub(crate) run: RunArgs,
    /// etcd value size in bytes. Default: the mean size of the Cairn log entries of the same
    /// run (a hashedrekord entry, about 488 bytes).
    #[arg(long)]
    pub(crate) value_bytes: Option<usize>,
    /// The etcd binary. Default: `etcd` on PATH (Debian: `apt-get install -y etcd-server`).
    #[arg(long)]
    pub(crate) etcd_bin: Option<PathBuf>,
}

/// The `peer` subcommand: Cairn then etcd for every client count, and their ratios.
pub(crate) async fn peer(args: PeerArgs) -> anyhow::Result<()> {
    args.run.check()?;
    let members = args.run.one_size()?;
    if let Some(bytes) = args.value_bytes {
        anyhow::ensure!(
            (16..=1_048_576).contains(&bytes),
            "--value-bytes must be 16 to 1048576"
        );
    }
    // Fail before anything starts if etcd is missing.
    let find = || crate::cluster::find_binary("etcd", INSTALL_HINT);
    let etcd_bin = args.etcd_bin.clone().map_or_else(find, Ok)?;
    let etcd_version = etcd_version(&etcd_bin)?;
    let environment = run::environment();
    eprintln!("peer: {etcd_version}");

    // Cairn first.
    let appends = crate::appends::AppendsArgs::with(args.run.clone());
    let run = async |cairn: &_| crate::appends::run_all(&appends, cairn).await;
    let cairn_runs = args.run.on_clusters(&[], None, run).await?;

    // Then etcd, with the Cairn entries' size.
    let value_bytes = args
        .value_bytes
        .or_else(|| {
            cairn_runs
                .first()
                .and_then(|run| run["leaf_bytes"].as_u64()?.try_into().ok())
        })
        .context("no Cairn run to take the entry size from")?;
    let foreign_etcd_pids = foreign_etcd_pids();
    if !foreign_etcd_pids.is_empty() {
        eprintln!(
            "note: etcd processes not started by this benchmark are running ({foreign_etcd_pids:?}); \
             they are left alone (ours use other ports and directories) and their CPU shows as \
             \"other\""
        );
    }
    let bin = etcd_bin.display();
    eprintln!("starting a {members}-member etcd cluster ({bin}), values of {value_bytes} bytes");
    let members = usize::from(members);
    let etcd_cluster = EtcdCluster::start(&etcd_bin, members, &args.run).await?;
    let once = async |clients| {
        eprintln!("etcd, {clients} clients");
        run_puts(&etcd_cluster, args.run.phases(clients, "puts"), value_bytes).await
    };
    let result = args.run.each(COLUMNS, once).await;
    eprintln!("stopping the etcd cluster");
    tokio::task::block_in_place(|| drop(etcd_cluster));
    let etcd_runs = result?;

    // One comparison per client count; the ratio is Cairn appends/s ÷ etcd puts/s (the target
    // is at least 3).
    let ratios: Vec<serde_json::Value> = (cairn_runs.iter().zip(&etcd_runs))
        .map(|(cairn, etcd)| {
            let (appends, puts) = (number(cairn, "appends_per_second"), number(etcd, "puts_per_second"));
            serde_json::json!({
                "clients": cairn["clients"], "cairn_appends_per_second": appends,
                "etcd_puts_per_second": puts,
                "ratio": if puts > 0.0 { appends / puts } else { 0.0 },
                "cairn_p99_ms": number(cairn, "latency.p99_ms"), "etcd_p99_ms": number(etcd, "latency.p99_ms"),
            })
        })
        .collect();
    // `foreign_etcd_pids`: etcd processes this benchmark did not start (left alone).
    let report = serde_json::json!({
        "environment": environment, "etcd_version": etcd_version,
        "foreign_etcd_pids": foreign_etcd_pids,
        "cairn": cairn_runs, "etcd": etcd_runs, "ratios": ratios,
    });
    args.run.finish(&report, peer_table, false)
}

/// The Markdown table of a `peer` report (also the suite report's): one row per client count.
pub(crate) fn peer_table(report: &serde_json::Value) -> String {
    let list = |key: &str| report[key].as_array().cloned().unwrap_or_default();
    let rows: Vec<serde_json::Value> = (list("ratios").into_iter().zip(list("cairn")))
        .zip(list("etcd"))
        .map(|((ratio, cairn), etcd)| serde_json::json!({ "ratio": ratio, "cairn": cairn, "etcd": etcd }))
        .collect();
    crate::stats::table(
        "clients=ratio.clients | Cairn appends/s=ratio.cairn_appends_per_second:0 \
         | Cairn p50 ms=cairn.latency.p50_ms:1 | Cairn p99 ms=cairn.latency.p99_ms:1 \
         | etcd puts/s=ratio.etcd_puts_per_second:0 | etcd p50 ms=etcd.latency.p50_ms:1 \
         | etcd p99 ms=etcd.latency.p99_ms:1 | Cairn ÷ etcd=ratio.ratio:2 \
         | Cairn node CPU %=cairn.node_usage:cpu | etcd member CPU %=etcd.member_usage:cpu \
         | other CPU % (Cairn)=cairn.other_cpu_percent:0 \
         | other CPU % (etcd)=etcd.other_cpu_percent:0",
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_have_the_asked_size_and_differ_per_put() {
        let a = value(3, 17, 488);
        assert_eq!(a.len(), 488);
        assert_eq!(a, value(3, 17, 488), "rebuilt for the read-back");
        assert_ne!(a, value(3, 18, 488));
        assert_ne!(a, value(4, 17, 488));
        assert_eq!(value(0, 0, 4).len(), 16, "client and sequence always fit");
    }
}
