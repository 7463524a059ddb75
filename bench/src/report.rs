//! `cairn-bench report`: the whole suite in one command, written up.
//!
//! Each part runs as a child process of this same binary (`cairn-bench appends --json ...`),
//! exactly as a user would run it alone, so the report and a hand-run measurement are the same
//! measurement. The results are read back as JSON, combined into `report.json`, and written
//! up as `README.md` with SVG plots and the standing against its design targets, each target
//! not met with its bottleneck named from the leader's CPU profile.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use plotters::prelude::*;
use serde_json::{Value, json};

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
    /// Where to write report.json, README.md and the plots (and raw/ with each part's JSON).
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
        let json = raw.join(format!("{part}.json"));
        let part_started = Instant::now();
        eprintln!(
            "== {part} ({:.0} s into the report)",
            started.elapsed().as_secs_f64()
        );
        run_part(args, part, &json)?;
        timings.insert(
            part.to_owned(),
            json!(part_started.elapsed().as_secs_f64().round()),
        );
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
        "environment": crate::run::Environment::read(),
        "quick": args.quick,
        "seconds_per_part": timings,
        "targets": targets,
        "parts": parts,
    });
    let path = args.out.join("report.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", path.display()))?;
    plot_throughput(&parts, &args.out.join("throughput.svg"))?;
    plot_latency(&parts, &args.out.join("latency.svg"))?;
    plot_scale(&parts, &args.out)?;
    let markdown = markdown(&report, &parts, &targets);
    let path = args.out.join("README.md");
    std::fs::write(&path, markdown).with_context(|| format!("writing {}", path.display()))?;
    eprintln!(
        "report written to {} in {:.0} s",
        args.out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Runs one part as `cairn-bench PART ... --json FILE`.
fn run_part(args: &ReportArgs, part: &str, json: &Path) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding this binary")?;
    let mut command = Command::new(exe);
    // The large scale part is the scale subcommand with larger sizes.
    command.arg(if part == SCALE_LARGE { "scale" } else { part });
    let (duration, warmup) = if args.quick { ("2", "1") } else { ("6", "2") };
    let clients = if args.quick { "16,64" } else { "16,64,256" };
    match part {
        // One node here; the 3-node appends run inside `peer`, next to etcd.
        "appends" => {
            command.args(["--nodes", "1", "--clients", clients, "--profile"]);
        }
        "peer" => {
            command.args(["--clients", clients, "--profile"]);
        }
        "certificates" => {
            let clients = if args.quick { "64" } else { "64,256" };
            command.args(["--nodes", "3", "--clients", clients, "--profile"]);
        }
        "reads" => {
            let prefill = if args.quick { "5000" } else { "50000" };
            command.args(["--clients", clients, "--prefill", prefill]);
        }
        "mix" => {
            let prefill = if args.quick { "5000" } else { "20000" };
            command.args(["--clients", "64", "--prefill", prefill]);
        }
        "witnessing" => {
            let clients = if args.quick { "64" } else { "64,256" };
            command.args(["--clients", clients]);
        }
        "scale" | SCALE_LARGE => {
            let sizes = if part == SCALE_LARGE {
                SCALE_LARGE_SIZES
            } else if args.quick {
                "10000,30000"
            } else {
                "100000,1000000"
            };
            command.args(["--sizes", sizes, "--json"]);
            command.arg(json);
            if let Some(node_bin) = &args.node_bin {
                command.arg("--node-bin").arg(node_bin);
            }
            return finish(command, part);
        }
        _ => bail!("unknown part {part}"),
    }
    command.args(["--duration", duration, "--warmup", warmup, "--json"]);
    command.arg(json);
    if let Some(node_bin) = &args.node_bin {
        command.arg("--node-bin").arg(node_bin);
    }
    finish(command, part)
}

fn finish(mut command: Command, part: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running cairn-bench {part}"))?;
    if !status.success() {
        bail!("cairn-bench {part} failed ({status})");
    }
    Ok(())
}

/// The scale curve the targets and plots use: the run up to 10^7 (`scale-large`) if there is
/// one, else the report's own; and a phrase naming it and its stamp.
fn scale_curve(parts: &serde_json::Map<String, Value>) -> (&[Value], String) {
    let large = list(parts, SCALE_LARGE, "points");
    if large.is_empty() {
        return (
            list(parts, "scale", "points"),
            "this report's scale run".into(),
        );
    }
    let stamp = &parts[SCALE_LARGE]["environment"];
    (
        large,
        format!(
            "the run to 10^7 of {} at `{}`",
            stamp["date"].as_str().unwrap_or("?"),
            stamp["commit"].as_str().unwrap_or("?")
        ),
    )
}

/// The runs of a part, or none.
fn runs<'a>(parts: &'a serde_json::Map<String, Value>, part: &str) -> &'a [Value] {
    list(parts, part, "runs")
}

/// A list in a part's results, or none.
fn list<'a>(parts: &'a serde_json::Map<String, Value>, part: &str, key: &str) -> &'a [Value] {
    parts
        .get(part)
        .and_then(|p| p[key].as_array())
        .map_or(&[], Vec::as_slice)
}

fn f(value: &Value) -> f64 {
    value.as_f64().unwrap_or(0.0)
}

/// The hottest components of a run's profile, as "redb 13%, kernel 31%, ...".
fn bottleneck(run: &Value) -> String {
    let Some(components) = run["profile"]["components"].as_array() else {
        return "no profile recorded".to_owned();
    };
    let top: Vec<String> = components
        .iter()
        .take(4)
        .map(|c| {
            format!(
                "{} {:.0}%",
                c["name"].as_str().unwrap_or("?"),
                f(&c["percent"])
            )
        })
        .collect();
    let cpu: f64 = run["node_usage"].as_array().map_or(0.0, |nodes| {
        nodes.iter().map(|n| f(&n["cpu_percent"])).sum()
    });
    let machine = f(&run["machine_cpu_percent"]);
    let mut text = format!(
        "{} CPU: {}",
        run["profile"]["process"].as_str().unwrap_or("leader"),
        top.join(", ")
    );
    if machine > 0.0 {
        let _ = write!(
            text,
            "; the machine's cores were {machine:.0}% busy (nodes {cpu:.0}%, of 200%)"
        );
    }
    text
}

/// The 3-node Cairn append runs: `peer`'s (measured next to etcd), else `appends`' own.
fn cairn_three_nodes(parts: &serde_json::Map<String, Value>) -> Vec<&Value> {
    let peer = list(parts, "peer", "cairn");
    let source = if peer.is_empty() {
        runs(parts, "appends")
    } else {
        peer
    };
    source
        .iter()
        .filter(|r| r["nodes"].as_u64() == Some(3) && r["mode"].as_str() != Some("open"))
        .collect()
}

fn highest<'a>(runs: impl IntoIterator<Item = &'a Value>, field: &str) -> Option<&'a Value> {
    runs.into_iter()
        .max_by(|a, b| f(&a[field]).total_cmp(&f(&b[field])))
}

/// The design targets, each with where Cairn stands.
fn targets(parts: &serde_json::Map<String, Value>) -> Vec<Value> {
    let mut targets = Vec::new();
    let three = cairn_three_nodes(parts);
    if let Some(run) = highest(three.iter().copied(), "appends_per_second") {
        let rate = f(&run["appends_per_second"]);
        let p99 = f(&run["latency"]["p99_ms"]);
        let met = rate >= 20_000.0 && p99 < 200.0;
        targets.push(json!({
            "target": "appends on 3 nodes: at least 20,000/s with p99 under 200 ms",
            "measured": format!("{rate:.0}/s at {} clients, p99 {p99:.0} ms", run["clients"]),
            "met": met,
            "bottleneck": if met { Value::Null } else { json!(bottleneck(run)) },
        }));
        if let Some(etcd) = highest(list(parts, "peer", "etcd"), "puts_per_second") {
            let puts = f(&etcd["puts_per_second"]);
            let ratio = if puts > 0.0 { rate / puts } else { 0.0 };
            let met = ratio >= 3.0;
            let cairn_cpu = cpu_per_operation(run, "node_usage", "appends_per_second");
            let etcd_cpu = cpu_per_operation(etcd, "member_usage", "puts_per_second");
            targets.push(json!({
                "target": "at least 3 times etcd's put rate (3 nodes, same clients and value size)",
                "measured": format!(
                    "{ratio:.2}x: Cairn {rate:.0} appends/s, etcd {puts:.0} puts/s at {} clients (peaks)",
                    etcd["clients"]
                ),
                "met": met,
                "bottleneck": if met { Value::Null } else { json!(format!(
                    "both are CPU-bound on the shared cores: Cairn's nodes spend {cairn_cpu:.0} µs \
                     of CPU per append, etcd's members {etcd_cpu:.0} µs per put; {}",
                    bottleneck(run)
                )) },
            }));
        }
    }
    let certificates = runs(parts, "certificates");
    if let Some(run) = highest(certificates, "certificates_per_second") {
        let rate = f(&run["certificates_per_second"]);
        let met = rate >= 5_000.0;
        targets.push(json!({
            "target": "keyless CA on 3 nodes: at least 5,000 certificates/s",
            "measured": format!("{rate:.0}/s at {} clients, p99 {:.0} ms", run["clients"], f(&run["latency"]["p99_ms"])),
            "met": met,
            "bottleneck": if met { Value::Null } else { json!(bottleneck(run)) },
        }));
    }
    let (points, curve) = scale_curve(parts);
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let largest = f(&last["entries"]);
        let disk = |p: &Value| f(&p["disk"]["state_bytes_per_entry"]);
        let written = |p: &Value| f(&p["fill"]["written_bytes_per_entry"]);
        let proof = |p: &Value| f(&p["proofs"]["inclusion"]["p99_ms"]);
        let appends = |p: &Value| f(&p["appends"]["appends_per_second"]);
        let flat = |a: f64, b: f64| a > 0.0 && b <= a * 1.5 && b >= a / 1.5;
        let met = largest >= 1e7
            && flat(disk(first), disk(last))
            && flat(proof(first), proof(last))
            && flat(appends(first), appends(last));
        targets.push(json!({
            "target": "flat cost per entry up to 10^7 entries",
            "measured": format!(
                "{curve}: {} to {} entries: disk {:.0} to {:.0} B/entry per node, inclusion proof p99 \
                 {:.1} to {:.1} ms, appends {:.0} to {:.0}/s, bytes written per entry while \
                 filling {:.0} to {:.0}",
                first["entries"], last["entries"], disk(first), disk(last), proof(first),
                proof(last), appends(first), appends(last), written(first), written(last)
            ),
            "met": met,
            "bottleneck": if met { Value::Null } else { json!(scale_bottleneck(first, last, largest)) },
        }));
    }
    targets
}

/// Why the flat-cost target is not met, from the first and last points of the scale curve.
fn scale_bottleneck(first: &Value, last: &Value, largest: f64) -> String {
    let ratio = |path: &[&str]| {
        let value = |point: &Value| f(path.iter().fold(point, |value: &Value, key| &value[*key]));
        if value(first) > 0.0 {
            value(last) / value(first)
        } else {
            0.0
        }
    };
    let mut causes = Vec::new();
    if largest < 1e7 {
        causes.push(format!(
            "not measured beyond {largest:.0} entries (10^7 needs about 26 GB of disk and about 12 \
             minutes on this machine: `cairn-bench report --large`)"
        ));
    }
    let proofs = ratio(&["proofs", "inclusion", "p99_ms"]);
    if !(1.0 / 1.5..=1.5).contains(&proofs) {
        causes.push(format!(
            "inclusion proof p99 grows {proofs:.1}x: a proof reads a few pages per tile level, and \
             at the largest size the nodes' databases no longer fit this machine's page cache \
             together, so some of those reads go to the disk (docs/benchmarks/scale.md)"
        ));
    }
    for (what, path) in [
        (
            "bytes kept per entry",
            ["disk", "state_bytes_per_entry"].as_slice(),
        ),
        (
            "appends per second",
            ["appends", "appends_per_second"].as_slice(),
        ),
    ] {
        let change = ratio(path);
        if !(1.0 / 1.5..=1.5).contains(&change) {
            causes.push(format!("{what} change {change:.1}x"));
        }
    }
    causes.join("; ")
}

/// CPU microseconds per operation over a run's window, from its processes' usage.
fn cpu_per_operation(run: &Value, usage: &str, rate: &str) -> f64 {
    let percent: f64 = run[usage].as_array().map_or(0.0, |processes| {
        processes.iter().map(|p| f(&p["cpu_percent"])).sum()
    });
    let rate = f(&run[rate]);
    if rate > 0.0 {
        percent / 100.0 / rate * 1e6
    } else {
        0.0
    }
}

/// One series of a plot: a name and (x, y) points.
type Series = (String, Vec<(f64, f64)>);

/// The (x, y) points of `runs`, y at `path`, sorted by x.
fn points<'a>(
    runs: impl IntoIterator<Item = &'a Value>,
    x: &[&str],
    y: &[&str],
) -> Vec<(f64, f64)> {
    let at = |run: &'a Value, path: &[&str]| {
        let mut value = run;
        for key in path {
            value = &value[*key];
        }
        f(value)
    };
    let mut points: Vec<(f64, f64)> = runs
        .into_iter()
        .map(|run| (at(run, x), at(run, y)))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn plot_throughput(parts: &serde_json::Map<String, Value>, path: &Path) -> anyhow::Result<()> {
    let one: Vec<&Value> = runs(parts, "appends")
        .iter()
        .filter(|r| r["nodes"].as_u64() == Some(1) && r["mode"].as_str() != Some("open"))
        .collect();
    let series: Vec<Series> = vec![
        (
            "Cairn appends, 1 node".into(),
            points(one, &["clients"], &["appends_per_second"]),
        ),
        (
            "Cairn appends, 3 nodes".into(),
            points(
                cairn_three_nodes(parts),
                &["clients"],
                &["appends_per_second"],
            ),
        ),
        (
            "etcd puts, 3 members".into(),
            points(
                list(parts, "peer", "etcd"),
                &["clients"],
                &["puts_per_second"],
            ),
        ),
        (
            "Cairn CA certificates, 3 nodes".into(),
            points(
                runs(parts, "certificates"),
                &["clients"],
                &["certificates_per_second"],
            ),
        ),
        (
            "Cairn witnessed appends (2 of 3), 3 nodes".into(),
            points(
                runs(parts, "witnessing"),
                &["appends", "clients"],
                &["appends", "appends_per_second"],
            ),
        ),
    ];
    line_plot(
        path,
        "Writes against concurrent clients (verified operations per second)",
        "clients",
        "operations/s",
        &series,
    )?;
    let reads = vec![(
        "Cairn verified reads, 3 nodes".to_owned(),
        points(runs(parts, "reads"), &["clients"], &["reads_per_second"]),
    )];
    line_plot(
        &path.with_file_name("reads.svg"),
        "Verified reads (checkpoints, tiles, bundles, proofs) per second",
        "clients",
        "reads/s",
        &reads,
    )
}

fn plot_latency(parts: &serde_json::Map<String, Value>, path: &Path) -> anyhow::Result<()> {
    let three = cairn_three_nodes(parts);
    let mut series: Vec<Series> = ["p50_ms", "p99_ms", "max_ms"]
        .iter()
        .map(|q| {
            (
                format!("Cairn appends, 3 nodes, {}", q.trim_end_matches("_ms")),
                points(three.iter().copied(), &["clients"], &["latency", q]),
            )
        })
        .collect();
    for q in ["p50_ms", "p99_ms"] {
        series.push((
            format!("etcd puts, 3 members, {}", q.trim_end_matches("_ms")),
            points(list(parts, "peer", "etcd"), &["clients"], &["latency", q]),
        ));
    }
    line_plot(
        path,
        "Write latency: Cairn to a verified, proof-carrying answer; etcd to an acknowledged put",
        "clients",
        "milliseconds",
        &series,
    )
}

fn plot_scale(parts: &serde_json::Map<String, Value>, dir: &Path) -> anyhow::Result<()> {
    let (scale, _) = scale_curve(parts);
    if scale.is_empty() {
        return Ok(());
    }
    let entries = ["entries"];
    line_plot(
        &dir.join("scale-bytes.svg"),
        "Bytes per entry as the log grows (3 nodes)",
        "entries in the log",
        "bytes per entry",
        &[
            (
                "kept on disk, state per node".into(),
                points(scale, &entries, &["disk", "state_bytes_per_entry"]),
            ),
            (
                "written while filling, all replicas".into(),
                points(scale, &entries, &["fill", "written_bytes_per_entry"]),
            ),
        ],
    )?;
    line_plot(
        &dir.join("scale-rates.svg"),
        "Entries per second as the log grows (3 nodes)",
        "entries in the log",
        "entries/s",
        &[
            (
                "verified appends (64 clients)".into(),
                points(scale, &entries, &["appends", "appends_per_second"]),
            ),
            (
                "fill (batches straight to Raft)".into(),
                points(scale, &entries, &["fill", "entries_per_second"]),
            ),
            (
                "catch-up of a new node".into(),
                points(scale, &entries, &["catch_up", "entries_per_second"]),
            ),
        ],
    )?;
    line_plot(
        &dir.join("scale-proofs.svg"),
        "Verified proof latency as the log grows (3 nodes)",
        "entries in the log",
        "milliseconds",
        &[
            (
                "inclusion p50".into(),
                points(scale, &entries, &["proofs", "inclusion", "p50_ms"]),
            ),
            (
                "inclusion p99".into(),
                points(scale, &entries, &["proofs", "inclusion", "p99_ms"]),
            ),
            (
                "consistency p99".into(),
                points(scale, &entries, &["proofs", "consistency", "p99_ms"]),
            ),
        ],
    )
}

/// Series colours, told apart in print and by most colour-blind readers (Okabe and Ito).
const COLORS: [RGBColor; 6] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
];

/// A log-x line plot of `series` (empty series are left out).
fn line_plot(
    path: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
) -> anyhow::Result<()> {
    let drawn: Vec<&Series> = series.iter().filter(|(_, p)| !p.is_empty()).collect();
    let points = drawn.iter().flat_map(|(_, p)| p.iter());
    let (mut x_max, mut y_max) = (1.0f64, 1.0f64);
    let mut x_min = f64::MAX;
    for &(x, y) in points {
        x_min = x_min.min(x);
        x_max = x_max.max(x);
        y_max = y_max.max(y);
    }
    if x_min == f64::MAX {
        x_min = 1.0;
    }
    // Ticks at the measured x values: a log axis over a short range has no round ones.
    let mut ticks: Vec<f64> = drawn
        .iter()
        .flat_map(|(_, p)| p.iter().map(|&(x, _)| x))
        .collect();
    ticks.sort_by(f64::total_cmp);
    ticks.dedup();
    let root = SVGBackend::new(path, (760, 440)).into_drawing_area();
    let draw = || -> Result<(), Box<dyn std::error::Error + '_>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(
                ((x_min * 0.8)..(x_max * 1.25))
                    .log_scale()
                    .with_key_points(ticks.clone()),
                0.0..(y_max * 1.15),
            )?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.0}"))
            .draw()?;
        for (i, (name, points)) in drawn.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
            chart.draw_series(
                points
                    .iter()
                    .map(|&point| Circle::new(point, 3, color.filled())),
            )?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(|e| anyhow::anyhow!("plotting {}: {e}", path.display()))
}

/// One row per measured size of a scale run.
fn scale_table(page: &mut String, points: &[Value]) {
    let _ = writeln!(
        page,
        "| entries | state B/entry/node | Raft log B/entry | written B/entry (fill) | fill/s | appends/s | append p99 ms | inclusion p50 / p99 ms | consistency p99 ms | new node catch-up s |"
    );
    let _ = writeln!(page, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for point in points {
        let _ = writeln!(
            page,
            "| {} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} | {:.1} | {:.2} / {:.2} | {:.2} | {:.1} |",
            point["entries"],
            f(&point["disk"]["state_bytes_per_entry"]),
            f(&point["disk"]["raft_log_bytes_per_entry"]),
            f(&point["fill"]["written_bytes_per_entry"]),
            f(&point["fill"]["entries_per_second"]),
            f(&point["appends"]["appends_per_second"]),
            f(&point["appends"]["latency"]["p99_ms"]),
            f(&point["proofs"]["inclusion"]["p50_ms"]),
            f(&point["proofs"]["inclusion"]["p99_ms"]),
            f(&point["proofs"]["consistency"]["p99_ms"]),
            f(&point["catch_up"]["learner_seconds"]),
        );
    }
    let _ = writeln!(page);
}

/// The Markdown page.
fn markdown(report: &Value, parts: &serde_json::Map<String, Value>, targets: &[Value]) -> String {
    let environment = &report["environment"];
    let mut page = String::new();
    let _ = writeln!(page, "# Cairn benchmark report\n");
    let _ = writeln!(
        page,
        "Written by `cairn-bench report` (see \"How to reproduce\"). Every counted operation was \
         verified as a client verifies it (signed checkpoint, inclusion proof, certificate chain \
         and SCT), so a fast but wrong server cannot score.\n"
    );
    if report["quick"].as_bool() == Some(true) {
        let _ = writeln!(
            page,
            "**This is a `--quick` run: 2-second windows, to check the pipeline. Do not quote \
             its numbers.**\n"
        );
    }
    let _ = writeln!(
        page,
        "- Date: {}",
        environment["date"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        page,
        "- Commit: `{}`",
        environment["commit"].as_str().unwrap_or("?")
    );
    let _ = writeln!(
        page,
        "- Machine: {}, {} cores, {:.1} GiB RAM; nodes, load generator and peers share the cores \
         and the one disk",
        environment["cpu_model"].as_str().unwrap_or("?"),
        environment["cores"],
        f(&environment["memory_gib"])
    );
    let _ = writeln!(page, "- fsync: {}", crate::appends::FSYNC);
    if let Some(run) = runs(parts, "appends").first() {
        let _ = writeln!(
            page,
            "- Sequencer (batch size and age, checkpoint per batch): `{}`",
            run["sequencer"]
        );
        let _ = writeln!(
            page,
            "- Entries: {} ({} request bytes, {} bytes in the log)",
            run["entry_kind"].as_str().unwrap_or("?"),
            run["request_bytes"],
            run["leaf_bytes"]
        );
    }
    let _ = writeln!(
        page,
        "- Clients: one keep-alive HTTP/1.1 connection each, one request in flight (closed \
         loop); client i talks to node i mod n\n"
    );

    let _ = writeln!(page, "## Where Cairn stands against the targets\n");
    let _ = writeln!(
        page,
        "| target | measured | met | bottleneck (from a profile) |"
    );
    let _ = writeln!(page, "|---|---|---|---|");
    for target in targets {
        let _ = writeln!(
            page,
            "| {} | {} | {} | {} |",
            target["target"].as_str().unwrap_or("?"),
            target["measured"].as_str().unwrap_or("?"),
            if target["met"].as_bool() == Some(true) {
                "yes"
            } else {
                "**no**"
            },
            target["bottleneck"].as_str().unwrap_or("-")
        );
    }
    let _ = writeln!(page);
    let _ = writeln!(page, "![writes](throughput.svg)\n");
    let _ = writeln!(page, "![write latency](latency.svg)\n");

    let _ = writeln!(page, "## Appends (Rekor v2 hashedrekord)\n");
    let _ = writeln!(
        page,
        "The 3-node runs are `peer`'s, measured just before etcd on the same machine.\n"
    );
    let _ = writeln!(
        page,
        "| nodes | clients | appends/s | p50 ms | p90 ms | p99 ms | max ms | errors | node CPU µs/append | leader's hottest code |"
    );
    let _ = writeln!(page, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    let one = runs(parts, "appends")
        .iter()
        .filter(|r| r["nodes"].as_u64() == Some(1));
    for run in one.chain(cairn_three_nodes(parts)) {
        let _ = writeln!(
            page,
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {} |",
            run["nodes"],
            run["clients"],
            f(&run["appends_per_second"]),
            f(&run["latency"]["p50_ms"]),
            f(&run["latency"]["p90_ms"]),
            f(&run["latency"]["p99_ms"]),
            f(&run["latency"]["max_ms"]),
            error_count(&run["errors"]),
            cpu_per_operation(run, "node_usage", "appends_per_second"),
            hottest(run)
        );
    }
    let _ = writeln!(page);

    let etcd = list(parts, "peer", "etcd");
    if !etcd.is_empty() {
        let _ = writeln!(page, "## Side by side: etcd\n");
        let _ = writeln!(
            page,
            "{}, 3 members on loopback started by the benchmark, fsync on (etcd's default), \
             data on the same disk; values as long as Cairn's log entries, put through gRPC \
             (`etcd-client`) by the same number of clients; every 64th put read back and \
             compared.\n",
            parts["peer"]["etcd_version"].as_str().unwrap_or("etcd")
        );
        let _ = writeln!(
            page,
            "| clients | Cairn appends/s | etcd puts/s | ratio | Cairn p99 ms | etcd p99 ms | etcd CPU µs/put |"
        );
        let _ = writeln!(page, "|---:|---:|---:|---:|---:|---:|---:|");
        for ratio in list(parts, "peer", "ratios") {
            let members = etcd
                .iter()
                .find(|e| e["clients"] == ratio["clients"])
                .map_or(0.0, |e| {
                    cpu_per_operation(e, "member_usage", "puts_per_second")
                });
            let _ = writeln!(
                page,
                "| {} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {members:.0} |",
                ratio["clients"],
                f(&ratio["cairn_appends_per_second"]),
                f(&ratio["etcd_puts_per_second"]),
                f(&ratio["ratio"]),
                f(&ratio["cairn_p99_ms"]),
                f(&ratio["etcd_p99_ms"]),
            );
        }
        let _ = writeln!(page);
    }

    let _ = writeln!(
        page,
        "## Keyless CA (certificate issued, logged twice, verified)\n"
    );
    let _ = writeln!(
        page,
        "| nodes | clients | certificates/s | p50 ms | p99 ms | max ms | errors | leader's hottest code |"
    );
    let _ = writeln!(page, "|---:|---:|---:|---:|---:|---:|---:|---|");
    for run in runs(parts, "certificates") {
        let _ = writeln!(
            page,
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} |",
            run["nodes"],
            run["clients"],
            f(&run["certificates_per_second"]),
            f(&run["latency"]["p50_ms"]),
            f(&run["latency"]["p99_ms"]),
            f(&run["latency"]["max_ms"]),
            error_count(&run["errors"]),
            hottest(run)
        );
    }
    let _ = writeln!(page);

    for (part, title) in [
        (
            "reads",
            "Reads (every answer verified against a reference tree and the log key)",
        ),
        ("mix", "Reads mixed with appends"),
    ] {
        let runs = runs(parts, part);
        if runs.is_empty() {
            continue;
        }
        let _ = writeln!(page, "## {title}\n");
        let _ = writeln!(
            page,
            "| nodes | clients | tree size | appends % | reads/s | read p50 ms | read p99 ms | appends/s | append p99 ms | errors |"
        );
        let _ = writeln!(page, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for run in runs {
            let _ = writeln!(
                page,
                "| {} | {} | {} | {} | {:.0} | {:.2} | {:.2} | {:.0} | {:.1} | {} |",
                run["nodes"],
                run["clients"],
                run["tree_size"],
                run["appends_percent"],
                f(&run["reads_per_second"]),
                f(&run["reads_latency"]["p50_ms"]),
                f(&run["reads_latency"]["p99_ms"]),
                f(&run["appends_per_second"]),
                f(&run["appends_latency"]["p99_ms"]),
                error_count(&run["errors"]),
            );
        }
        let _ = writeln!(page);
        if part == "reads" {
            let _ = writeln!(page, "![reads](reads.svg)\n");
        }
    }

    let witnessing = runs(parts, "witnessing");
    if !witnessing.is_empty() {
        let _ = writeln!(page, "## Witness cosigning\n");
        let _ = writeln!(
            page,
            "A 3-node cluster that publishes a checkpoint only with {} of {} witness \
             cosignatures (each witness its own process); an append counts only if its answer's \
             checkpoint carries that quorum.\n",
            parts["witnessing"]["quorum"], parts["witnessing"]["witnesses"]
        );
        let _ = writeln!(
            page,
            "| clients | witnessed appends/s | p50 ms | p99 ms | rounds/s | round mean ms | witness CPU ms/cosignature | errors |"
        );
        let _ = writeln!(page, "|---:|---:|---:|---:|---:|---:|---:|---:|");
        for run in witnessing {
            let (appends, rounds) = (&run["appends"], &run["witnessing"]);
            let _ = writeln!(
                page,
                "| {} | {:.0} | {:.1} | {:.1} | {:.0} | {:.1} | {:.2} | {} |",
                appends["clients"],
                f(&appends["appends_per_second"]),
                f(&appends["latency"]["p50_ms"]),
                f(&appends["latency"]["p99_ms"]),
                f(&rounds["rounds_per_second"]),
                f(&rounds["round_mean_ms"]),
                f(&rounds["witness_cpu_ms_per_cosignature"]),
                error_count(&appends["errors"]),
            );
        }
        let _ = writeln!(page);
    }

    let scale = list(parts, "scale", "points");
    if !scale.is_empty() {
        let _ = writeln!(page, "## Scale: the cost per entry as the log grows\n");
        let _ = writeln!(
            page,
            "Between sizes the log is grown by {}. At each size every measurement goes \
             through the public API.\n",
            parts["scale"]["settings"]["fill_method"]
                .as_str()
                .unwrap_or("see docs/benchmarks/scale.md")
        );
        scale_table(&mut page, scale);
    }
    let large = list(parts, SCALE_LARGE, "points");
    if !large.is_empty() {
        let stamp = &parts[SCALE_LARGE]["environment"];
        let _ = writeln!(page, "### Up to 10^7 entries (measured separately)\n");
        let _ = writeln!(
            page,
            "The same measurements up to 10^7 entries, from one run of `cairn-bench report \
             --large` or `cairn-bench scale --sizes {SCALE_LARGE_SIZES}`, which takes about 12 \
             minutes and 26 GB of disk here and so is not part of the 20-minute report. This \
             run: {}, commit `{}`, {} s in all. The targets above and the plots below use it. \
             docs/benchmarks/scale.md discusses it.\n",
            stamp["date"].as_str().unwrap_or("?"),
            stamp["commit"].as_str().unwrap_or("?"),
            f(&parts[SCALE_LARGE]["total_seconds"]).round(),
        );
        scale_table(&mut page, large);
    }
    if !scale.is_empty() || !large.is_empty() {
        let _ = writeln!(page, "![bytes per entry](scale-bytes.svg)\n");
        let _ = writeln!(page, "![entries per second](scale-rates.svg)\n");
        let _ = writeln!(page, "![proof latency](scale-proofs.svg)\n");
    }

    let _ = writeln!(page, "## How to reproduce\n");
    let _ = writeln!(
        page,
        "```sh\nscripts/bench-report   # installs what it needs, builds in release, runs \
         `cairn-bench report`\n```\n"
    );
    let _ = writeln!(
        page,
        "Each part can be run alone with the same settings (`cairn-bench PART --help` explains \
         each): `appends --nodes 1 --clients 16,64,256 --duration 6 --warmup 2 --profile`, \
         `peer --clients 16,64,256 --profile` (needs Debian's `etcd-server`), `certificates \
         --nodes 3 --clients 64,256 --profile`, `reads --clients 16,64,256 --prefill 50000`, \
         `mix --clients 64 --prefill 20000`, `witnessing --clients 64,256`, `scale --sizes \
         100000,1000000`, and with `--large` also `scale --sizes {SCALE_LARGE_SIZES}` (into \
         `raw/scale-large.json`). `raw/` holds each part's full JSON (every run's errors, retries, \
         node CPU and memory, batch sizes and profile); `report.json` combines them. The \
         profiles are `perf record` samples of the leader's own code (self time), grouped by \
         crate; the kernel's share is system calls (fsync, loopback network, scheduling).\n"
    );
    if let Some(seconds) = report["seconds_per_part"].as_object() {
        let list: Vec<String> = seconds
            .iter()
            .map(|(part, s)| format!("{part} {s} s"))
            .collect();
        let _ = writeln!(page, "Time per part in this run: {}.", list.join(", "));
    }
    page
}

fn error_count(errors: &Value) -> u64 {
    errors
        .as_object()
        .map_or(0, |kinds| kinds.values().filter_map(Value::as_u64).sum())
}

/// The top two components of a run's profile.
fn hottest(run: &Value) -> String {
    run["profile"]["components"].as_array().map_or_else(
        || "-".to_owned(),
        |components| {
            components
                .iter()
                .take(3)
                .map(|c| {
                    format!(
                        "{} {:.0}%",
                        c["name"].as_str().unwrap_or("?"),
                        f(&c["percent"])
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    )
}
