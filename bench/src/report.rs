//! `cairn-bench report`: the whole suite, each part a child process of this binary exactly as a
//! user would run it, combined into `report.json` and written up as `README.md`: each part's
//! table and the design targets, each one not met with its bottleneck from a CPU profile.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use serde_json::{Map, Value, json};

use crate::stats::{self, number as f};

/// The parts of the suite, in the order they run.
const PARTS: [&str; 8] = [
    "appends",
    "peer",
    "certificates",
    "reads",
    "mix",
    "witnessing",
    "scale",
    "scale-large",
];

/// The part that grows the log to 10^7 entries: run only with `--large` (it takes about 12
/// minutes and 26 GB of disk on the project's machine, beyond the report's 20 minutes).
/// Without it the report keeps the previous `raw/scale-large.json` and shows its own stamp.
const SCALE_LARGE: &str = "scale-large";
/// The sizes of the large scale run: one curve from one run, up to 10^7.
const SCALE_LARGE_SIZES: &str = "100000,1000000,10000000";

/// The `report` subcommand's arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct ReportArgs {
    /// Where to write report.json, README.md (and raw/ with each part's JSON).
    #[arg(long, default_value = "docs/benchmarks")]
    out: PathBuf,
    /// The cairn-node binary. Default: next to this binary, then PATH.
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// Parts to leave out (comma-separated), keeping their previous raw results if any.
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// Short runs (2 s each, fewer client counts): to check the pipeline, not to measure.
    #[arg(long)]
    quick: bool,
    /// Also run the scale part up to 10^7 entries (`scale --sizes 100000,1000000,10000000`):
    /// about 12 minutes and 26 GB of disk in the system temp directory on the project's
    /// 2-core machine. Without it the report keeps the previous raw/scale-large.json, stamped
    /// with its own date and commit.
    #[arg(long)]
    large: bool,
}

/// Runs every part and writes the report.
pub(crate) fn report(args: &ReportArgs) -> anyhow::Result<()> {
    for part in &args.skip {
        if !PARTS.contains(&part.as_str()) {
            bail!("--skip {part}: the parts are {}", PARTS.join(", "));
        }
    }
    let raw = args.out.join("raw");
    std::fs::create_dir_all(&raw).with_context(|| format!("creating {}", raw.display()))?;
    let started = Instant::now();
    let mut timings = serde_json::Map::new();
    for part in PARTS {
        if args.skip.iter().any(|s| s == part) {
            eprintln!("== {part}: skipped");
            continue;
        }
        if part == SCALE_LARGE && !args.large {
            eprintln!(
                "== {part}: not run (--large runs it: about 12 minutes and 26 GB); keeping \
                 raw/{part}.json if there is one"
            );
            continue;
        }
        let (part_started, into) = (Instant::now(), started.elapsed().as_secs_f64());
        eprintln!("== {part} ({into:.0} s into the report)");
        run_part(args, part, &raw.join(format!("{part}.json")))?;
        let seconds = part_started.elapsed().as_secs_f64().round();
        timings.insert(part.to_owned(), json!(seconds));
    }
    let mut parts = serde_json::Map::new();
    for part in PARTS {
        let path = raw.join(format!("{part}.json"));
        if let Ok(bytes) = std::fs::read(&path) {
            let value: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?;
            parts.insert(part.to_owned(), value);
        }
    }
    let targets = targets(&parts);
    let report = json!({
        "environment": crate::run::environment(),
        "quick": args.quick,
        "seconds_per_part": timings,
        "targets": targets,
        "parts": parts,
    });
    let markdown = markdown(&report, &parts, &targets);
    for (name, text) in [
        ("report.json", serde_json::to_vec_pretty(&report)?),
        ("README.md", markdown.into_bytes()),
    ] {
        let path = args.out.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let (out, seconds) = (args.out.display(), started.elapsed().as_secs_f64());
    eprintln!("report written to {out} in {seconds:.0} s");
    Ok(())
}

/// Runs one part as `cairn-bench PART ... --json FILE`.
fn run_part(args: &ReportArgs, part: &str, json: &Path) -> anyhow::Result<()> {
    let quick = args.quick;
    let pick =
        |quick_value: &'static str, full: &'static str| if quick { quick_value } else { full };
    let clients = pick("16,64", "16,64,256");
    let settings = match part {
        // One node here; the 3-node appends run inside `peer`, next to etcd.
        "appends" => format!("--nodes 1 --clients {clients} --profile"),
        "peer" => format!("--clients {clients} --profile"),
        "certificates" => format!("--nodes 3 --clients {} --profile", pick("64", "64,256")),
        "reads" => format!("--clients {clients} --prefill {}", pick("5000", "50000")),
        "mix" => format!("--clients 64 --prefill {}", pick("5000", "20000")),
        "witnessing" => format!("--clients {}", pick("64", "64,256")),
        "scale" => format!("--sizes {}", pick("10000,30000", "100000,1000000")),
        SCALE_LARGE => format!("--sizes {SCALE_LARGE_SIZES}"),
        _ => bail!("unknown part {part}"),
    };
    let mut command = Command::new(std::env::current_exe().context("finding this binary")?);
    // The large scale part is the scale subcommand with larger sizes.
    command.arg(if part == SCALE_LARGE { "scale" } else { part });
    command.args(settings.split_whitespace());
    if !part.starts_with("scale") {
        command.args(["--duration", pick("2", "6"), "--warmup", pick("1", "2")]);
    }
    command.arg("--json").arg(json);
    if let Some(node_bin) = &args.node_bin {
        command.arg("--node-bin").arg(node_bin);
    }
    let status = command
        .status()
        .with_context(|| format!("running cairn-bench {part}"))?;
    if !status.success() {
        bail!("cairn-bench {part} failed ({status})");
    }
    Ok(())
}

/// A list in a part's results, or none.
fn list<'a>(parts: &'a Map<String, Value>, part: &str, key: &str) -> &'a [Value] {
    parts
        .get(part)
        .and_then(|p| p[key].as_array())
        .map_or(&[], Vec::as_slice)
}

/// The scale curve's charts, `title=path` (as table columns).
const CHARTS: &str = "Bytes written per entry while filling=fill.written_bytes_per_entry \
    | State bytes per entry per node=disk.state_bytes_per_entry \
    | Appends per second=appends.appends_per_second \
    | Inclusion proof p99, ms=proofs.inclusion.p99_ms \
    | New node catch-up, entries per second=catch_up.entries_per_second";

/// The scale curve as line charts, one per cost, in Mermaid, which GitHub draws from the text:
/// plots that come with the numbers they are made of.
fn scale_charts(points: &[Value]) -> String {
    let series = |path: &str, show: &dyn Fn(f64) -> String| {
        let values: Vec<String> = points.iter().map(|point| show(f(point, path))).collect();
        values.join(", ")
    };
    let sizes = series("entries", &|entries| format!("\"{entries}\""));
    let mut text = String::from("\n### The scale curve, plotted\n");
    for (title, path) in CHARTS
        .split('|')
        .filter_map(|chart| chart.trim().split_once('='))
    {
        let values = series(path, &|value| format!("{value:.2}"));
        let _ = write!(
            text,
            "\n```mermaid\nxychart-beta\n  title \"{title}\"\n  x-axis \"entries\" [{sizes}]\n  \
             line [{values}]\n```\n"
        );
    }
    text
}

/// Where a run's CPU went, from its profile: "node 1 (leader) CPU: redb 13%, kernel 31%, ...".
fn bottleneck(run: &Value) -> String {
    if !run["profile"]["components"].is_array() {
        return "no profile recorded".to_owned();
    }
    let process = run["profile"]["process"].as_str().unwrap_or("leader");
    let mut text = format!("{process} CPU: {}", stats::hottest(&run["profile"], 4));
    let (machine, nodes) = (f(run, "machine_cpu_percent"), cpu(run, "node_usage"));
    if machine > 0.0 {
        let _ = write!(
            text,
            "; the machine's cores were {machine:.0}% busy (nodes {nodes:.0}%, of 200%)"
        );
    }
    text
}

/// The CPU percent of a run's processes together.
fn cpu(run: &Value, usage: &str) -> f64 {
    run[usage].as_array().map_or(0.0, |processes| {
        processes.iter().map(|p| f(p, "cpu_percent")).sum()
    })
}

/// CPU microseconds per operation over a run's window, from its processes' usage.
fn cpu_per_operation(run: &Value, usage: &str, rate: &str) -> f64 {
    let rate = f(run, rate);
    if rate > 0.0 {
        cpu(run, usage) / 100.0 / rate * 1e6
    } else {
        0.0
    }
}

/// The 3-node Cairn append runs: `peer`'s (measured next to etcd), else `appends`' own.
fn cairn_three_nodes(parts: &Map<String, Value>) -> Vec<&Value> {
    let peer = list(parts, "peer", "cairn");
    let source = if peer.is_empty() {
        list(parts, "appends", "runs")
    } else {
        peer
    };
    let closed = |r: &&Value| r["nodes"].as_u64() == Some(3) && r["mode"].as_str() != Some("open");
    source.iter().filter(closed).collect()
}

fn highest<'a>(runs: impl IntoIterator<Item = &'a Value>, field: &str) -> Option<&'a Value> {
    runs.into_iter()
        .max_by(|a, b| f(a, field).total_cmp(&f(b, field)))
}

/// A design target and where Cairn stands; what holds it back if it is not met.
fn target(target: &str, measured: &str, met: bool, bottleneck: impl FnOnce() -> String) -> Value {
    json!({ "target": target, "measured": measured, "met": met, "bottleneck": (!met).then(bottleneck) })
}

/// The design targets, each with where Cairn stands.
fn targets(parts: &Map<String, Value>) -> Vec<Value> {
    let mut targets = Vec::new();
    if let Some(run) = highest(cairn_three_nodes(parts), "appends_per_second") {
        let (rate, p99) = (f(run, "appends_per_second"), f(run, "latency.p99_ms"));
        targets.push(target(
            "appends on 3 nodes: at least 20,000/s with p99 under 200 ms",
            &format!("{rate:.0}/s at {} clients, p99 {p99:.0} ms", run["clients"]),
            rate >= 20_000.0 && p99 < 200.0,
            || bottleneck(run),
        ));
        if let Some(etcd) = highest(list(parts, "peer", "etcd"), "puts_per_second") {
            let puts = f(etcd, "puts_per_second");
            let ratio = if puts > 0.0 { rate / puts } else { 0.0 };
            let cairn_cpu = cpu_per_operation(run, "node_usage", "appends_per_second");
            let etcd_cpu = cpu_per_operation(etcd, "member_usage", "puts_per_second");
            targets.push(target(
                "at least 3 times etcd's put rate (3 nodes, same clients and value size)",
                &format!(
                    "{ratio:.2}x: Cairn {rate:.0} appends/s, etcd {puts:.0} puts/s at {} clients \
                     (peaks)",
                    etcd["clients"]
                ),
                ratio >= 3.0,
                || {
                    format!(
                        "both are CPU-bound on the shared cores: Cairn's nodes spend \
                         {cairn_cpu:.0} µs of CPU per append, etcd's members {etcd_cpu:.0} µs \
                         per put; {}",
                        bottleneck(run)
                    )
                },
            ));
        }
    }
    if let Some(run) = highest(
        list(parts, "certificates", "runs"),
        "certificates_per_second",
    ) {
        let (rate, p99) = (f(run, "certificates_per_second"), f(run, "latency.p99_ms"));
        targets.push(target(
            "keyless CA on 3 nodes: at least 5,000 certificates/s",
            &format!("{rate:.0}/s at {} clients, p99 {p99:.0} ms", run["clients"]),
            rate >= 5_000.0,
            || bottleneck(run),
        ));
    }
    // The curve to 10^7 (`scale-large`) if there is one, else this report's own.
    let large = list(parts, SCALE_LARGE, "points");
    let (points, curve) = if large.is_empty() {
        let curve = "this report's scale run".to_owned();
        (list(parts, "scale", "points"), curve)
    } else {
        let stamp = &parts[SCALE_LARGE]["environment"];
        let (date, commit) = (stamp["date"].as_str(), stamp["commit"].as_str());
        let (date, commit) = (date.unwrap_or("?"), commit.unwrap_or("?"));
        (large, format!("the run to 10^7 of {date} at `{commit}`"))
    };
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let change = |path: &str| match f(first, path) {
            first if first > 0.0 => f(last, path) / first,
            _ => 0.0,
        };
        let flat = |path: &str| (1.0 / 1.5..=1.5).contains(&change(path));
        let (disk, proof) = ("disk.state_bytes_per_entry", "proofs.inclusion.p99_ms");
        let (appends, written) = ("appends.appends_per_second", "fill.written_bytes_per_entry");
        let largest = f(last, "entries");
        let range = |path: &str, places: usize| {
            let (first, last) = (f(first, path), f(last, path));
            format!("{first:.places$} to {last:.places$}")
        };
        targets.push(target(
            "flat cost per entry up to 10^7 entries",
            &format!(
                "{curve}: {} entries: disk {} B/entry per node, inclusion proof p99 {} ms, \
                 appends {}/s, bytes written per entry while filling {}",
                range("entries", 0),
                range(disk, 0),
                range(proof, 1),
                range(appends, 0),
                range(written, 0)
            ),
            largest >= 1e7 && flat(disk) && flat(proof) && flat(appends),
            || {
                let mut causes = Vec::new();
                if largest < 1e7 {
                    causes.push(format!(
                        "not measured beyond {largest:.0} entries (10^7 needs about 26 GB of disk \
                         and about 12 minutes on this machine: `cairn-bench report --large`)"
                    ));
                }
                if !flat(proof) {
                    causes.push(format!(
                        "inclusion proof p99 grows {:.1}x: a proof reads a few pages per tile \
                         level, and at the largest size the nodes' databases no longer fit this \
                         machine's page cache together, so some of those reads go to the disk \
                         (docs/benchmarks/scale.md)",
                        change(proof)
                    ));
                }
                for (what, path) in [
                    ("bytes kept per entry", disk),
                    ("appends per second", appends),
                ] {
                    if !flat(path) {
                        causes.push(format!("{what} change {:.1}x", change(path)));
                    }
                }
                causes.join("; ")
            },
        ));
    }
    targets
}

/// The Markdown page: where it ran, the targets, then each part's table as the part itself
/// prints it.
fn markdown(report: &Value, parts: &Map<String, Value>, targets: &[Value]) -> String {
    let environment = &report["environment"];
    let text = |value: &Value| value.as_str().unwrap_or("?").to_owned();
    let mut page = format!(
        "# Cairn benchmark report\n\nWritten by `cairn-bench report` (`scripts/bench-report` \
         installs what it needs, builds in release and runs it) on {}, commit `{}`: {}, {} \
         cores, {:.1} GiB RAM, shared by the nodes, the load generator and the peers. fsync {}. \
         Every counted operation was verified as a client verifies it. `raw/` holds each part's \
         full JSON, `report.json` all of them; `cairn-bench PART --help` explains each part.\n",
        text(&environment["date"]),
        text(&environment["commit"]),
        text(&environment["cpu_model"]),
        environment["cores"],
        f(environment, "memory_gib"),
        crate::appends::FSYNC,
    );
    if report["quick"].as_bool() == Some(true) {
        page.push_str("\n**A `--quick` run: 2-second windows. Do not quote its numbers.**\n");
    }
    page.push_str("\n## Where Cairn stands against the targets\n");
    page.push_str(&stats::table(
        "target=target | measured=measured | met=met | bottleneck (from a profile)=bottleneck",
        targets,
    ));
    let appends: Vec<Value> = list(parts, "appends", "runs")
        .iter()
        .filter(|r| r["nodes"].as_u64() == Some(1))
        .chain(cairn_three_nodes(parts))
        .cloned()
        .collect();
    let _ = write!(
        page,
        "\n## Appends (3 nodes: `peer`'s runs, next to etcd)\n{}",
        crate::appends::table(&json!({ "runs": appends }))
    );
    let large = parts
        .get(SCALE_LARGE)
        .map_or(Value::Null, |p| p["environment"].clone());
    let (date, commit) = (text(&large["date"]), text(&large["commit"]));
    let large = format!("Scale to 10^7 entries (`--large`, {date} at `{commit}`)");
    let sections: [(&str, &str, stats::Table); 7] = [
        ("peer", "Side by side: etcd", crate::etcd::peer_table),
        ("certificates", "Keyless CA", crate::certificates::table),
        ("reads", "Reads", crate::reads::table),
        ("mix", "Reads mixed with appends", crate::reads::table),
        ("witnessing", "Witness cosigning", crate::witnessing::table),
        (
            "scale",
            "Scale: the cost per entry as the log grows",
            crate::scale::table,
        ),
        (SCALE_LARGE, &large, crate::scale::table),
    ];
    for (part, title, table) in sections {
        if let Some(results) = parts.get(part) {
            let _ = write!(page, "\n## {title}\n{}", table(results));
        }
    }
    let curve = parts.get(SCALE_LARGE).or_else(|| parts.get("scale"));
    if let Some(points) = curve.and_then(|part| part["points"].as_array())
        && points.len() > 1
    {
        page.push_str(&scale_charts(points));
    }
    if let Some(seconds) = report["seconds_per_part"].as_object()
        && !seconds.is_empty()
    {
        let list: Vec<String> = seconds
            .iter()
            .map(|(part, s)| format!("{part} {s} s"))
            .collect();
        let _ = writeln!(page, "\nTime per part in this run: {}.", list.join(", "));
    }
    page
}
