//! `cairn-bench report`: the whole suite, each part a child process of this binary exactly as a
//! user would run it, combined into `report.json` and written up as `README.md`, each part's
//! table as the part itself prints it. What each figure is held to is discussed with its
//! measurements in the pages beside it (`scale.md`, `etcd.md`, ...).

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
    let report = json!({
        "environment": crate::run::environment(),
        "quick": args.quick,
        "seconds_per_part": timings,
        "parts": parts,
    });
    let markdown = markdown(&report, &parts);
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

/// The Markdown page: where it ran, then each part's table as the part itself prints it.
fn markdown(report: &Value, parts: &Map<String, Value>) -> String {
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
