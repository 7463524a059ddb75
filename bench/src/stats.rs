//! Latency percentiles (HdrHistogram in µs: 0.1% relative error at every magnitude, and
//! per-client histograms merge exactly), error tallies and the one Markdown table.

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

/// The longest latency a histogram holds; longer ones are clamped to it (a request that takes
/// over two minutes has long been reported as a timeout anyway).
const LATENCY_MAX_MICROS: u64 = 120_000_000;

/// Latencies of one client or of a whole run.
#[derive(Clone, Debug)]
pub(crate) struct Latencies {
    histogram: Histogram<u64>,
}

impl Latencies {
    pub(crate) fn new() -> Latencies {
        Latencies {
            // 1 µs to 120 s at 3 significant digits: about 200 KiB per histogram, fine per client.
            histogram: Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3)
                .expect("the bounds are constants that satisfy 1 <= low < high/2 and sigfig <= 5"),
        }
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_MAX_MICROS);
        // Cannot fail: the value was clamped into the histogram's range.
        let _ = self.histogram.record(micros);
    }

    /// How many latencies were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.histogram.len()
    }

    pub(crate) fn merge(&mut self, other: &Latencies) {
        // Cannot fail: both histograms have the same bounds.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Percentiles in milliseconds; all zero when nothing was recorded.
    pub(crate) fn summary(&self) -> LatencySummary {
        if self.histogram.is_empty() {
            return LatencySummary::default();
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        LatencySummary {
            count: self.histogram.len(),
            mean_ms: self.histogram.mean() / 1000.0,
            p50_ms: ms(self.histogram.value_at_quantile(0.50)),
            p90_ms: ms(self.histogram.value_at_quantile(0.90)),
            p99_ms: ms(self.histogram.value_at_quantile(0.99)),
            p999_ms: ms(self.histogram.value_at_quantile(0.999)),
            max_ms: ms(self.histogram.max()),
        }
    }
}

/// Latency percentiles of the verified appends in the measured window, in milliseconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct LatencySummary {
    pub(crate) count: u64,
    pub(crate) mean_ms: f64,
    pub(crate) p50_ms: f64,
    pub(crate) p90_ms: f64,
    pub(crate) p99_ms: f64,
    pub(crate) p999_ms: f64,
    pub(crate) max_ms: f64,
}

/// Counts by kind (`http 429`, `transport`, `verify: proof`, ...), sorted for stable output.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub(crate) struct Tally(BTreeMap<String, u64>);

impl Tally {
    pub(crate) fn add(&mut self, kind: &str) {
        *self.0.entry(kind.to_string()).or_default() += 1;
    }

    pub(crate) fn merge(&mut self, other: &Tally) {
        for (kind, count) in &other.0 {
            *self.0.entry(kind.clone()).or_default() += count;
        }
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, u64)> {
        self.0.iter().map(|(kind, count)| (kind.as_str(), *count))
    }
}

/// Completions per second over a window; zero for an empty window rather than infinity.
pub(crate) fn per_second(count: u64, window: Duration) -> f64 {
    let seconds = window.as_secs_f64();
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// How a report's JSON becomes its Markdown table (each subcommand's `table`).
pub(crate) type Table = fn(&Value) -> String;

/// A Markdown table of JSON rows (runs as their reports serialize them), so every subcommand
/// and the report lay out the same fields the same way. `columns` is `header=path[:format]`
/// separated by `|`: `path` is dot-separated keys, `format` the decimals of a number, `sum`
/// (an error tally's total), `cpu` (processes' CPU as "a + b") or `top` (a profile's three
/// hottest components). A missing value is "-".
pub(crate) fn table<'a>(columns: &str, rows: impl IntoIterator<Item = &'a Value>) -> String {
    let columns: Vec<(&str, &str)> = columns
        .split('|')
        .map(|column| column.trim().split_once('=').unwrap_or((column.trim(), "")))
        .collect();
    let headers: Vec<&str> = columns.iter().map(|(header, _)| *header).collect();
    let mut text = format!(
        "\n| {} |\n|{}\n",
        headers.join(" | "),
        "---:|".repeat(columns.len())
    );
    for row in rows {
        let cells: Vec<String> = columns.iter().map(|(_, spec)| cell(row, spec)).collect();
        text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    text
}

/// The value at `path` (dot-separated keys), null if there is none.
pub(crate) fn at<'a>(value: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(value, |value, key| &value[key])
}

/// The number at `path` (dot-separated keys), 0 if there is none.
pub(crate) fn number(value: &Value, path: &str) -> f64 {
    at(value, path).as_f64().unwrap_or(0.0)
}

/// A profile's `count` hottest components: "redb 40%, kernel 30%".
pub(crate) fn hottest(profile: &Value, count: usize) -> String {
    let components = profile["components"].as_array().into_iter().flatten();
    let top: Vec<String> = (components.take(count))
        .map(|c| {
            format!(
                "{} {:.0}%",
                c["name"].as_str().unwrap_or("?"),
                c["percent"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    top.join(", ")
}

fn cell(row: &Value, spec: &str) -> String {
    let (path, format) = spec.split_once(':').unwrap_or((spec, ""));
    let value = at(row, path);
    let number = |value: &Value| value.as_f64().unwrap_or(0.0);
    let list = |value: &Value| value.as_array().cloned().unwrap_or_default();
    match (format, value) {
        (_, Value::Null) => "-".into(),
        ("sum", _) => (value.as_object().into_iter().flatten())
            .filter_map(|(_, count)| count.as_u64())
            .sum::<u64>()
            .to_string(),
        ("cpu", _) => {
            let cpu: Vec<String> = list(value)
                .iter()
                .map(|usage| format!("{:.0}", number(&usage["cpu_percent"])))
                .collect();
            if cpu.is_empty() {
                "-".into()
            } else {
                cpu.join(" + ")
            }
        }
        ("top", _) => hottest(value, 3),
        (decimals, Value::Number(_)) if !decimals.is_empty() => {
            format!("{:.*}", decimals.parse().unwrap_or(0), number(value))
        }
        (_, Value::String(text)) => text.clone(),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 3 significant digits: every percentile within about 0.1% of the exact value (HdrHistogram
    /// reports the top of the value's bucket, so allow twice that).
    fn close(actual: f64, expected: f64) -> bool {
        (actual - expected).abs() <= expected * 0.002 + 1e-9
    }

    #[test]
    fn percentiles_of_merged_clients_and_clamped_latencies() {
        let (mut a, mut b) = (Latencies::new(), Latencies::new());
        for ms in 1..=1000u64 {
            let client = if ms % 3 == 0 { &mut a } else { &mut b };
            client.record(Duration::from_millis(ms));
        }
        a.merge(&b);
        let summary = a.summary();
        assert_eq!(summary.count, 1000);
        let (p50, p90, p99, mean) = (
            summary.p50_ms,
            summary.p90_ms,
            summary.p99_ms,
            summary.mean_ms,
        );
        for (actual, expected) in [(p50, 500.0), (p90, 900.0), (p99, 990.0), (mean, 500.5)] {
            assert!(close(actual, expected), "{summary:?}");
        }
        assert_eq!(Latencies::new().summary(), LatencySummary::default());
        let mut clamped = Latencies::new();
        clamped.record(Duration::ZERO);
        clamped.record(Duration::from_secs(3600));
        let summary = clamped.summary();
        assert!(summary.p50_ms >= 0.001, "zero is clamped to 1 µs");
        assert!(
            close(summary.max_ms, 120_000.0),
            "an hour is clamped to 120 s"
        );
    }

    #[test]
    fn tallies_merge_by_kind_and_rates_handle_an_empty_window() {
        let (mut a, mut b) = (Tally::default(), Tally::default());
        a.add("http 429");
        a.add("http 429");
        b.add("verify: proof");
        b.add("http 429");
        a.merge(&b);
        let merged: Vec<(&str, u64)> = a.iter().collect();
        assert_eq!(merged, [("http 429", 3), ("verify: proof", 1)]);
        assert!((per_second(500, Duration::from_millis(250)) - 2000.0).abs() < 1e-9);
        assert!(per_second(5, Duration::ZERO).abs() < f64::EPSILON);
    }

    #[test]
    fn tables_format_each_kind_of_cell() {
        let row = serde_json::json!({
            "n": 3, "rate": 1234.567, "latency": { "p99_ms": 2.0 }, "errors": { "http 503": 2, "timeout": 1 },
            "node_usage": [{ "cpu_percent": 80.4 }, { "cpu_percent": 20.0 }], "missing": null,
            "profile": { "components": [{ "name": "redb", "percent": 40.0 }, { "name": "kernel", "percent": 30.0 }] },
        });
        let text = table(
            "n=n | rate=rate:1 | p99=latency.p99_ms:2 | errors=errors:sum | cpu=node_usage:cpu \
             | gone=missing:0 | absent=no.such | hot=profile:top",
            [&row],
        );
        assert_eq!(
            text,
            "\n| n | rate | p99 | errors | cpu | gone | absent | hot |\n\
             |---:|---:|---:|---:|---:|---:|---:|---:|\n\
             | 3 | 1234.6 | 2.00 | 3 | 80 + 20 | - | - | redb 40%, kernel 30% |\n"
        );
    }
}
