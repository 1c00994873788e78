//! Consumer-side filters on fetch and subscribe: the stored batches of one read go
//! through the filter plugin a consumer named, once per batch, and only kept records
//! travel.
//!
//! A batch whose records are all kept is sent as stored (same bytes, same CRC); a batch
//! with some dropped is re-encoded with the kept records at their original offsets (same
//! base offset, codec and producer identity); a batch with none kept is left out. The
//! response's `next_offset` still moves past every batch examined, so the consumer never
//! reads dropped records again. Without a filter none of this runs: fetch stays a copy of
//! stored bytes.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use quiver_plugin_host::{FilterPlugin, RecordView};
use quiver_proto::Record;
use quiver_proto::batch::{self, BatchBuilder, BatchHeader, ProducerIdentity};
use quiver_storage::ReadOutcome;

use super::blocking;
use super::types::FilterRef;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::plugins::{PluginService, call_error};

/// A filter a read names, bound to its warm plugin on first use (binding may compile
/// the component and run its `init`, so it happens on the blocking pool, inside the
/// first read's hop).
#[derive(Debug)]
pub(super) struct ReadFilter {
    spec: FilterRef,
    plugins: Arc<PluginService>,
    bound: Option<Arc<FilterPlugin>>,
}

impl ReadFilter {
    pub(super) fn new(spec: FilterRef, plugins: Arc<PluginService>) -> Self {
        ReadFilter {
            spec,
            plugins,
            bound: None,
        }
    }

    /// Binds the filter now, before the read waits for any data: a fetch or subscription
    /// naming a plugin that does not exist, is not a filter, or refuses its parameters
    /// fails at once, on an empty partition too.
    pub(super) async fn bind(&mut self) -> Result<(), BrokerError> {
        if self.bound.is_some() {
            return Ok(());
        }
        let plugins = Arc::clone(&self.plugins);
        let spec = self.spec.clone();
        let bound = blocking(move || bind(&plugins, &spec)).await?;
        self.bound = Some(bound);
        Ok(())
    }

    fn plugin(&mut self) -> Result<Arc<FilterPlugin>, BrokerError> {
        if let Some(bound) = &self.bound {
            return Ok(Arc::clone(bound));
        }
        let bound = bind(&self.plugins, &self.spec)?;
        self.bound = Some(Arc::clone(&bound));
        Ok(bound)
    }
}

fn bind(plugins: &PluginService, spec: &FilterRef) -> Result<Arc<FilterPlugin>, BrokerError> {
    let params: Vec<(String, String)> = spec
        .params
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    plugins.filter(&spec.name, spec.version, &params)
}

/// One read of `partition` from `offset`, passed through `filter` when there is one:
/// the read and the filter share one hop to the blocking pool. Returns what the log
/// said and the bytes to send (the stored bytes, or only the kept records).
pub(super) async fn read(
    partition: &Arc<Partition>,
    filter: &mut Option<ReadFilter>,
    offset: i64,
    max_bytes: usize,
) -> Result<(ReadOutcome, Bytes), BrokerError> {
    let partition = Arc::clone(partition);
    // Taken here, not in the blocking task, so a read waits out a reopen in progress.
    let log = partition.current_log().await?;
    let mut taken = filter.take();
    let (result, back) = tokio::task::spawn_blocking(move || {
        let result = read_blocking(&partition, &log, taken.as_mut(), offset, max_bytes);
        (result, taken)
    })
    .await
    .map_err(|e| BrokerError::Internal(format!("read task failed: {e}")))?;
    *filter = back;
    result
}

fn read_blocking(
    partition: &Partition,
    log: &quiver_storage::PartitionLog,
    filter: Option<&mut ReadFilter>,
    offset: i64,
    max_bytes: usize,
) -> Result<(ReadOutcome, Bytes), BrokerError> {
    let plugin = filter.map(ReadFilter::plugin).transpose()?;
    let out = log
        .read(offset, max_bytes)
        .map_err(|source| partition.storage_error(source))?;
    let payload = match plugin {
        Some(plugin) if !out.bytes.is_empty() => keep_records(&out.bytes, offset, |records| {
            let views: Vec<RecordView<'_>> = records.iter().map(RecordView::from).collect();
            plugin.keep(&views).map_err(call_error)
        })?,
        _ => out.bytes.clone(),
    };
    Ok((out, payload))
}

/// Runs `decide` once per data batch of `stored` over its records at or after `from`,
/// and returns the batches re-encoded with only the records it kept. Control batches
/// pass unchanged.
pub(super) fn keep_records<F>(
    stored: &Bytes,
    from: i64,
    mut decide: F,
) -> Result<Bytes, BrokerError>
where
    F: FnMut(&[Record]) -> Result<Vec<bool>, BrokerError>,
{
    let mut out = BytesMut::new();
    for piece in batch::split(stored) {
        let (header, bytes) = piece?;
        if header.is_control() {
            out.extend_from_slice(&bytes);
            continue;
        }
        let mut records = batch::decode_records(&bytes)?;
        let total = records.len();
        // The first batch of a read may start before the requested offset.
        records.retain(|r| r.offset >= from);
        if records.is_empty() {
            continue;
        }
        let keep = decide(&records)?;
        if keep.len() != records.len() {
            return Err(BrokerError::PluginFailed(format!(
                "filter returned {} decisions for {} records",
                keep.len(),
                records.len()
            )));
        }
        let kept = keep.iter().filter(|k| **k).count();
        if kept == total {
            out.extend_from_slice(&bytes);
        } else if kept > 0 {
            out.extend_from_slice(&rebuild(&header, &records, &keep)?);
        }
    }
    Ok(out.freeze())
}

/// The batch re-encoded with the kept records at their original offsets.
fn rebuild(header: &BatchHeader, records: &[Record], keep: &[bool]) -> Result<Bytes, BrokerError> {
    let mut builder = BatchBuilder::new();
    for (record, _) in records.iter().zip(keep).filter(|(_, k)| **k) {
        let delta = i32::try_from(record.offset - header.base_offset).map_err(|_| {
            BrokerError::Internal(format!(
                "record at offset {} is too far from its batch's base offset {}",
                record.offset, header.base_offset
            ))
        })?;
        builder.push_at(
            delta,
            record.timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
    }
    let identity = ProducerIdentity {
        producer_id: header.producer_id,
        producer_epoch: header.producer_epoch,
        base_sequence: header.base_sequence,
    };
    let mut built = builder
        .build_at(header.base_offset, header.compression()?, identity)
        .to_vec();
    batch::set_leader_epoch(&mut built, header.partition_leader_epoch);
    Ok(Bytes::from(built))
}

#[cfg(test)]
mod tests {
    use quiver_proto::batch::Compression;

    use super::*;

    /// Two stored batches: offsets 10..14 (gzip) and 15..17 (none).
    fn stored() -> Bytes {
        let mut out = BytesMut::new();
        for (base, n, codec) in [(10, 5, Compression::Gzip), (15, 3, Compression::None)] {
            let mut b = BatchBuilder::new();
            for i in 0..n {
                let value = format!("v{}", base + i);
                b.push(1000 + i, Some(b"k"), Some(value.as_bytes()), &[]);
            }
            out.extend_from_slice(&b.build_at(base, codec, ProducerIdentity::NONE));
        }
        out.freeze()
    }

    fn decoded(bytes: &Bytes) -> Vec<(i64, String)> {
        batch::split(bytes)
            .flat_map(|p| {
                let (_, b) = p.expect("whole batch");
                batch::validate(&b).expect("valid CRC");
                batch::decode_records(&b).expect("decodes")
            })
            .map(|r| {
                let v = String::from_utf8_lossy(r.value.as_deref().unwrap_or_default());
                (r.offset, v.into_owned())
            })
            .collect()
    }

    #[test]
    fn kept_records_keep_their_offsets_and_codec() {
        let stored = stored();
        let mut calls = 0;
        let out = keep_records(&stored, 10, |records| {
            calls += 1;
            Ok(records.iter().map(|r| r.offset % 2 == 0).collect())
        })
        .expect("filters");
        assert_eq!(calls, 2, "one call per batch");
        assert_eq!(
            decoded(&out),
            vec![
                (10, "v10".into()),
                (12, "v12".into()),
                (14, "v14".into()),
                (16, "v16".into())
            ]
        );
        let (first, _) = batch::split(&out).next().expect("a batch").expect("whole");
        assert_eq!(first.compression().expect("codec"), Compression::Gzip);
        assert_eq!(first.base_offset, 10);
    }

    #[test]
    fn untouched_batches_are_the_stored_bytes_and_empty_ones_vanish() {
        let stored = stored();
        let out = keep_records(&stored, 10, |records| {
            Ok(records.iter().map(|r| r.offset >= 15).collect())
        })
        .expect("filters");
        let second = batch::split(&stored)
            .nth(1)
            .expect("batch")
            .expect("whole")
            .1;
        assert_eq!(
            out, second,
            "the kept batch is sent as stored; the dropped one is gone"
        );
    }

    #[test]
    fn records_before_the_fetch_offset_are_neither_judged_nor_sent() {
        let stored = stored();
        let out = keep_records(&stored, 13, |records| {
            assert!(records.iter().all(|r| r.offset >= 13));
            Ok(vec![true; records.len()])
        })
        .expect("filters");
        let offsets: Vec<i64> = decoded(&out).into_iter().map(|(o, _)| o).collect();
        assert_eq!(offsets, vec![13, 14, 15, 16, 17]);
    }

    #[test]
    fn a_failing_filter_fails_the_read() {
        let err = keep_records(&stored(), 10, |_| {
            Err(BrokerError::PluginFailed("plugin `f` trapped".into()))
        })
        .expect_err("fails");
        assert!(err.to_string().contains("`f`"), "{err}");
    }
}
