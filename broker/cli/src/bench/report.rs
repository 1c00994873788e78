//! Printing a benchmark's figures, for people or as JSON.

use crate::output::say;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// One benchmark's result.
#[derive(Debug, Serialize)]
pub struct Report {
    pub bench: &'static str,
    pub records: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// Latency percentiles in microseconds, when the bench measures latency.
    pub latency_us: Option<Latency>,
    /// The broker's peak resident memory during the run (VmHWM), when it is a child.
    pub broker_peak_rss_mib: Option<f64>,
    /// CPU time of the broker process over the run, as a percentage of one core.
    pub broker_cpu_percent: Option<f64>,
    /// CPU time of this (client) process over the run, as a percentage of one core.
    pub client_cpu_percent: Option<f64>,
    /// Free-form settings of the run, for the record.
    pub settings: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// A latency histogram in microseconds, 1 µs to 60 s.
pub fn histogram() -> Histogram<u64> {
    // Fixed, valid bounds: this cannot fail.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

impl Report {
    pub fn new(bench: &'static str, records: u64, bytes: u64, elapsed: Duration) -> Self {
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Report {
            bench,
            records,
            bytes,
            seconds,
            records_per_sec: records as f64 / seconds,
            mb_per_sec: bytes as f64 / seconds / 1e6,
            latency_us: None,
            broker_peak_rss_mib: None,
            broker_cpu_percent: None,
            client_cpu_percent: None,
            settings: serde_json::Value::Null,
        }
    }

    pub fn with_latency(mut self, h: &Histogram<u64>) -> Self {
        if !h.is_empty() {
            self.latency_us = Some(Latency {
                p50: h.value_at_quantile(0.50),
                p99: h.value_at_quantile(0.99),
                p999: h.value_at_quantile(0.999),
                max: h.max(),
            });
        }
        self
    }

    pub fn print(&self, json: bool) {
        if json {
            say!("{}", serde_json::to_string(self).unwrap_or_default());
            return;
        }
        say!(
            "{}: {} records, {:.1} MB in {:.2} s",
            self.bench,
            self.records,
            self.bytes as f64 / 1e6,
            self.seconds
        );
        say!(
            "  {:.0} records/s, {:.1} MB/s",
            self.records_per_sec,
            self.mb_per_sec
        );
        if let Some(l) = &self.latency_us {
            say!(
                "  latency p50 {} µs, p99 {} µs, p999 {} µs, max {} µs",
                l.p50,
                l.p99,
                l.p999,
                l.max
            );
        }
        if let Some(rss) = self.broker_peak_rss_mib {
            say!("  broker peak RSS {rss:.1} MiB");
        }
        if let Some(cpu) = self.broker_cpu_percent {
            say!("  broker CPU {cpu:.0}% of a core");
        }
        if let Some(cpu) = self.client_cpu_percent {
            say!("  client CPU {cpu:.0}% of a core");
        }
        if !self.settings.is_null() {
            say!("  settings {}", self.settings);
        }
    }
}

/// A progress bar on stderr, hidden when stderr is not a terminal.
pub fn progress(total: u64, what: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar.set_message(what.to_string());
    bar
}

/// CPU seconds (user + system) a process has used, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel reports clock ticks; Linux fixes USER_HZ at 100.
    Some((utime + stime) / 100.0)
}

/// Measures CPU use of this process and, optionally, a child over one run.
#[derive(Debug)]
pub struct CpuMeter {
    child: Option<u32>,
    start: std::time::Instant,
    client0: Option<f64>,
    child0: Option<f64>,
}

impl CpuMeter {
    pub fn start(child: Option<u32>) -> Self {
        CpuMeter {
            child,
            start: std::time::Instant::now(),
            client0: cpu_seconds("self"),
            child0: child.and_then(|p| cpu_seconds(&p.to_string())),
        }
    }

    /// Fills the report's CPU percentages.
    pub fn finish(&self, report: &mut Report) {
        let wall = self.start.elapsed().as_secs_f64().max(1e-9);
        let pct = |now: Option<f64>, then: Option<f64>| Some((now? - then?) / wall * 100.0);
        report.client_cpu_percent = pct(cpu_seconds("self"), self.client0);
        report.broker_cpu_percent = pct(
            self.child.and_then(|p| cpu_seconds(&p.to_string())),
            self.child0,
        );
    }
}
