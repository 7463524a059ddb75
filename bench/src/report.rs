//! `cairn-bench report`: the whole suite in one command, written up.
//!
//! Each part runs as a child process of this same binary (`cairn-bench appends --json ...`),
//! exactly as a user would run it alone, so the report and a hand-run measurement are the same
//! measurement. The results are read back as JSON, combined into `report.json`, and written
//! up as `README.md` with SVG plots and the standing against DESIGN.md's targets, each target
//! not met with its bottleneck named from the leader's CPU profile.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, bail};
use plotters::prelude::*;
use serde_json::{Value, json};

/// The parts of the suite, in the order they run.
const PARTS: [&str; 2] = ["appends", "certificates"];

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
        "environment": crate::environment(),
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
    command.arg(part);
    let (duration, warmup) = if args.quick { ("2", "1") } else { ("8", "2") };
    match part {
        "appends" => {
            let clients = if args.quick { "16,64" } else { "16,64,256,512" };
            command.args(["--nodes", "1,3", "--clients", clients, "--profile"]);
        }
        "certificates" => {
            let clients = if args.quick { "64" } else { "64,256" };
            command.args(["--nodes", "3", "--clients", clients, "--profile"]);
        }
        _ => bail!("unknown part {part}"),
    }
    command.args(["--duration", duration, "--warmup", warmup, "--json"]);
    command.arg(json);
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

/// The runs of a part, or none.
fn runs<'a>(parts: &'a serde_json::Map<String, Value>, part: &str) -> &'a [Value] {
    parts
        .get(part)
        .and_then(|p| p["runs"].as_array())
        .map_or(&[], Vec::as_slice)
}

/// The run with the highest value of `field` among `runs` with `nodes` nodes.
fn best<'a>(runs: &'a [Value], nodes: u64, field: &str) -> Option<&'a Value> {
    runs.iter()
        .filter(|r| r["nodes"].as_u64() == Some(nodes) && r["mode"].as_str() != Some("open"))
        .max_by(|a, b| f(&a[field]).total_cmp(&f(&b[field])))
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

/// DESIGN.md's targets, each with where Cairn stands.
fn targets(parts: &serde_json::Map<String, Value>) -> Vec<Value> {
    let mut targets = Vec::new();
    let appends = runs(parts, "appends");
    if let Some(run) = best(appends, 3, "appends_per_second") {
        let rate = f(&run["appends_per_second"]);
        let p99 = f(&run["latency"]["p99_ms"]);
        let met = rate >= 20_000.0 && p99 < 200.0;
        targets.push(json!({
            "target": "appends on 3 nodes: at least 20,000/s with p99 under 200 ms",
            "measured": format!("{rate:.0}/s at {} clients, p99 {p99:.0} ms", run["clients"]),
            "met": met,
            "bottleneck": if met { Value::Null } else { json!(bottleneck(run)) },
        }));
    }
    let certificates = runs(parts, "certificates");
    if let Some(run) = certificates.iter().max_by(|a, b| {
        f(&a["certificates_per_second"]).total_cmp(&f(&b["certificates_per_second"]))
    }) {
        let rate = f(&run["certificates_per_second"]);
        let met = rate >= 5_000.0;
        targets.push(json!({
            "target": "keyless CA on 3 nodes: at least 5,000 certificates/s",
            "measured": format!("{rate:.0}/s at {} clients, p99 {:.0} ms", run["clients"], f(&run["latency"]["p99_ms"])),
            "met": met,
            "bottleneck": if met { Value::Null } else { json!(bottleneck(run)) },
        }));
    }
    targets
}

/// One series of a plot: a name and (x, y) points.
type Series = (String, Vec<(f64, f64)>);

/// Points (clients, field) of the closed-loop runs of a part with `nodes` nodes.
fn by_clients(runs: &[Value], nodes: u64, field: &[&str]) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = runs
        .iter()
        .filter(|r| r["nodes"].as_u64() == Some(nodes) && r["mode"].as_str() != Some("open"))
        .map(|r| {
            let mut value = r;
            for key in field {
                value = &value[*key];
            }
            (f(&r["clients"]), f(value))
        })
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

fn plot_throughput(parts: &serde_json::Map<String, Value>, path: &Path) -> anyhow::Result<()> {
    let appends = runs(parts, "appends");
    let certificates = runs(parts, "certificates");
    let series: Vec<Series> = vec![
        (
            "Cairn appends, 1 node".into(),
            by_clients(appends, 1, &["appends_per_second"]),
        ),
        (
            "Cairn appends, 3 nodes".into(),
            by_clients(appends, 3, &["appends_per_second"]),
        ),
        (
            "Cairn CA certificates, 3 nodes".into(),
            by_clients(certificates, 3, &["certificates_per_second"]),
        ),
    ];
    line_plot(
        path,
        "Throughput against concurrent clients (verified operations per second)",
        "clients",
        "operations/s",
        &series,
    )
}

fn plot_latency(parts: &serde_json::Map<String, Value>, path: &Path) -> anyhow::Result<()> {
    let appends = runs(parts, "appends");
    let series: Vec<Series> = ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
        .iter()
        .map(|q| {
            (
                format!("appends, 3 nodes, {}", q.trim_end_matches("_ms")),
                by_clients(appends, 3, &["latency", q]),
            )
        })
        .collect();
    line_plot(
        path,
        "Append latency to a verified, proof-carrying answer (3 nodes)",
        "clients",
        "milliseconds",
        &series,
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
    let _ = writeln!(page, "- fsync: {}", crate::FSYNC);
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
    let _ = writeln!(page, "![throughput](throughput.svg)\n");
    let _ = writeln!(page, "![latency](latency.svg)\n");

    let _ = writeln!(page, "## Appends (Rekor v2 hashedrekord)\n");
    let _ = writeln!(
        page,
        "| nodes | clients | appends/s | p50 ms | p90 ms | p99 ms | max ms | errors | leader's hottest code |"
    );
    let _ = writeln!(page, "|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for run in runs(parts, "appends") {
        let _ = writeln!(
            page,
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} |",
            run["nodes"],
            run["clients"],
            f(&run["appends_per_second"]),
            f(&run["latency"]["p50_ms"]),
            f(&run["latency"]["p90_ms"]),
            f(&run["latency"]["p99_ms"]),
            f(&run["latency"]["max_ms"]),
            error_count(&run["errors"]),
            hottest(run)
        );
    }
    let _ = writeln!(page);
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
    let _ = writeln!(page, "## How to reproduce\n");
    let _ = writeln!(
        page,
        "```sh\nscripts/bench-report   # installs what it needs, builds in release, runs \
         `cairn-bench report`\n```\n"
    );
    let _ = writeln!(
        page,
        "Each part can be run alone with the same settings: `cairn-bench appends --nodes 1,3 \
         --clients 16,64,256,512 --duration 8 --warmup 2 --profile`, `cairn-bench certificates \
         --nodes 3 --clients 64,256 --profile`. `raw/` holds each part's full JSON (every \
         run's errors, retries, node CPU and memory, batch sizes and profile); `report.json` \
         combines them.\n"
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
