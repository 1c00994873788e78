//! The figures read from the broker's state at each scrape: partitions, consumer groups,
//! the in-flight budget. Nothing here is kept between scrapes.

use std::fmt;
use std::sync::atomic::Ordering;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::service::BrokerService;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabels {
    topic: String,
    partition: u32,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupLabels {
    group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GroupPartitionLabels {
    group: String,
    topic: String,
    partition: u32,
}

/// One local partition as a scrape saw it.
#[derive(Debug)]
struct PartitionFigures {
    labels: PartitionLabels,
    /// `None` while the partition is offline.
    log: Option<LogFigures>,
    bytes_in: u64,
    records_in: u64,
    bytes_out: u64,
    records_out: u64,
}

#[derive(Debug)]
struct LogFigures {
    log_start: i64,
    log_end: i64,
    high_watermark: i64,
    segments: i64,
    size_bytes: i64,
}

/// Reads the broker's state at each scrape.
#[derive(Debug)]
pub(crate) struct StateCollector {
    service: BrokerService,
}

impl StateCollector {
    pub(crate) fn new(service: BrokerService) -> Self {
        StateCollector { service }
    }

    fn partitions(&self) -> Vec<PartitionFigures> {
        let mut out = Vec::new();
        for topic in self.service.broker.topics() {
            for p in topic.partitions.iter().filter(|p| p.is_local()) {
                let log = p.log().ok().map(|log| LogFigures {
                    log_start: log.log_start_offset(),
                    log_end: log.log_end_offset(),
                    high_watermark: log.high_watermark(),
                    segments: i64::try_from(log.segment_count()).unwrap_or(i64::MAX),
                    size_bytes: i64::try_from(log.size_bytes()).unwrap_or(i64::MAX),
                });
                let stats = &p.stats;
                out.push(PartitionFigures {
                    labels: PartitionLabels {
                        topic: p.topic.clone(),
                        partition: p.index,
                    },
                    log,
                    bytes_in: stats.bytes_in.load(Ordering::Relaxed),
                    records_in: stats.records_in.load(Ordering::Relaxed),
                    bytes_out: stats.bytes_out.load(Ordering::Relaxed),
                    records_out: stats.records_out.load(Ordering::Relaxed),
                });
            }
        }
        out
    }
}

/// Writes one family of gauges or counters, one sample per item that has a value.
fn family<T, L: EncodeLabelSet>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    items: &[T],
    sample: impl Fn(&T) -> Option<(&L, i64)>,
) -> fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in items.iter().filter_map(sample) {
        let encoder = family.encode_family(labels)?;
        match kind {
            MetricType::Counter => {
                ConstCounter::new(value.max(0).unsigned_abs()).encode(encoder)?
            }
            _ => ConstGauge::new(value).encode(encoder)?,
        }
    }
    Ok(())
}

fn count(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Collector for StateCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let metrics = &self.service.metrics;
        ConstGauge::new(count(metrics.inflight_bytes())).encode(encoder.encode_descriptor(
            "quiver_inflight_request_bytes",
            "Bytes of requests held in memory, read or being read",
            None,
            MetricType::Gauge,
        )?)?;

        let parts = self.partitions();
        let e = &mut encoder;
        use MetricType::{Counter, Gauge};
        family(
            e,
            "quiver_partition_offline",
            "1 while the partition's log cannot be opened",
            Gauge,
            &parts,
            |p| Some((&p.labels, i64::from(p.log.is_none()))),
        )?;
        type Log = fn(&LogFigures) -> i64;
        let logs: [(&str, &str, Log); 5] = [
            (
                "quiver_partition_log_start_offset",
                "First offset still stored",
                |l| l.log_start,
            ),
            (
                "quiver_partition_log_end_offset",
                "Offset the next appended record gets",
                |l| l.log_end,
            ),
            (
                "quiver_partition_high_watermark",
                "Offset below which consumers may read",
                |l| l.high_watermark,
            ),
            (
                "quiver_partition_segments",
                "Segment files of the partition",
                |l| l.segments,
            ),
            (
                "quiver_partition_size_bytes",
                "Bytes of the partition's segments on disk",
                |l| l.size_bytes,
            ),
        ];
        for (name, help, read) in logs {
            family(e, name, help, Gauge, &parts, |p| {
                p.log.as_ref().map(|l| (&p.labels, read(l)))
            })?;
        }
        type Traffic = fn(&PartitionFigures) -> u64;
        let traffic: [(&str, &str, Traffic); 4] = [
            (
                "quiver_partition_bytes_in",
                "Bytes of batches appended by producers since the partition opened",
                |p| p.bytes_in,
            ),
            (
                "quiver_partition_records_in",
                "Records appended by producers since the partition opened",
                |p| p.records_in,
            ),
            (
                "quiver_partition_bytes_out",
                "Bytes of batches sent to consumers since the partition opened",
                |p| p.bytes_out,
            ),
            (
                "quiver_partition_records_out",
                "Records sent to consumers since the partition opened",
                |p| p.records_out,
            ),
        ];
        for (name, help, read) in traffic {
            family(e, name, help, Counter, &parts, |p| {
                Some((&p.labels, count(read(p))))
            })?;
        }

        let groups = self.service.group_figures();
        family(
            e,
            "quiver_group_members",
            "Members of the consumer group",
            Gauge,
            &groups,
            |g| Some((&g.labels, i64::from(g.members))),
        )?;
        family(
            e,
            "quiver_group_generation",
            "The consumer group's generation",
            Gauge,
            &groups,
            |g| Some((&g.labels, i64::from(g.generation))),
        )?;
        let rows: Vec<(GroupPartitionLabels, Option<i64>, Option<i64>)> = groups
            .iter()
            .flat_map(|g| {
                g.lag.iter().map(|row| {
                    (
                        GroupPartitionLabels {
                            group: g.labels.group.clone(),
                            topic: row.partition.topic.clone(),
                            partition: row.partition.partition,
                        },
                        row.committed,
                        row.lag,
                    )
                })
            })
            .collect();
        family(
            e,
            "quiver_group_committed_offset",
            "The group's committed offset on the partition",
            Gauge,
            &rows,
            |r| r.1.map(|c| (&r.0, c)),
        )?;
        family(
            e,
            "quiver_group_lag",
            "High watermark minus the group's committed offset",
            Gauge,
            &rows,
            |r| r.2.map(|l| (&r.0, l)),
        )?;
        self.encode_plugins(e)
    }
}

impl StateCollector {
    fn encode_plugins(&self, e: &mut DescriptorEncoder) -> fmt::Result {
        use quiver_plugin_host::PluginFigures;
        let plugins: Vec<(PluginLabels, PluginFigures)> = self
            .service
            .broker
            .plugins
            .registry()
            .figures()
            .into_iter()
            .map(|(plugin, f)| (PluginLabels { plugin }, f))
            .collect();
        type Figure = fn(&PluginFigures) -> u64;
        let counters: [(&str, &str, Figure); 9] = [
            ("quiver_plugin_calls", "Calls into the plugin", |f| f.calls),
            (
                "quiver_plugin_records_in",
                "Records passed to the plugin",
                |f| f.records_in,
            ),
            (
                "quiver_plugin_records_out",
                "Records the plugin kept, routed or keyed",
                |f| f.records_out,
            ),
            (
                "quiver_plugin_call_microseconds",
                "Time spent in calls, summed (divide by calls for the mean)",
                |f| u64::try_from(f.call_time.as_micros()).unwrap_or(u64::MAX),
            ),
            (
                "quiver_plugin_traps",
                "Calls that trapped (a panic, unreachable, a bad access)",
                |f| f.traps,
            ),
            (
                "quiver_plugin_timeouts",
                "Calls stopped at their time limit",
                |f| f.timeouts,
            ),
            (
                "quiver_plugin_out_of_memory",
                "Calls stopped at their memory limit",
                |f| f.out_of_memory,
            ),
            (
                "quiver_plugin_guest_errors",
                "Calls the plugin answered with its own error",
                |f| f.guest_errors,
            ),
            (
                "quiver_plugin_reloads",
                "New versions made current after the first",
                |f| f.reloads,
            ),
        ];
        for (name, help, read) in counters {
            family(e, name, help, MetricType::Counter, &plugins, |(l, f)| {
                Some((l, count(read(f))))
            })?;
        }
        family(
            e,
            "quiver_plugin_memory_peak_bytes",
            "The most linear memory one instance grew to",
            MetricType::Gauge,
            &plugins,
            |(l, f)| Some((l, count(f.memory_peak_bytes))),
        )
    }
}

/// One consumer group as a scrape saw it.
#[derive(Debug)]
pub(crate) struct GroupFigures {
    labels: GroupLabels,
    members: u32,
    generation: i32,
    lag: Vec<crate::service::types::PartitionLag>,
}

impl GroupFigures {
    pub(crate) fn new(
        group: String,
        members: usize,
        generation: i32,
        lag: Vec<crate::service::types::PartitionLag>,
    ) -> Self {
        GroupFigures {
            labels: GroupLabels { group },
            members: u32::try_from(members).unwrap_or(u32::MAX),
            generation,
            lag,
        }
    }
}
