//! The `compactor` world: compaction keys, survivors and retention.

use std::borrow::Cow;
use std::cell::RefCell;
use std::thread::LocalKey;

use crate::bindings::wit;
use crate::{Batch, Config, Error, Parts, Record};

/// Which of two records for one compaction key survives.
pub use wit::Survivor;

/// A compaction policy. Every method but [`new`](Self::new) has the default policy's
/// behaviour: the record key is the compaction key, the newer record survives, and every
/// survivor is retained. Export it with [`export_compactor!`](crate::export_compactor).
pub trait Compactor: Sized + 'static {
    /// The parts of a record the other methods read.
    const PARTS: Parts = Parts::all();

    /// Builds the plugin from the topic's `compaction.policy` parameters.
    fn new(config: &Config) -> Result<Self, Error>;

    /// The compaction key; `None` leaves the record out of compaction.
    fn key<'r>(&mut self, record: &Record<'r>) -> Result<Option<Cow<'r, [u8]>>, Error> {
        Ok(record.key().map(Cow::Borrowed))
    }

    /// Which of `older` and `newer` (same key, older has the lower offset) survives.
    fn survivor(&mut self, older: &Record<'_>, newer: &Record<'_>) -> Result<Survivor, Error> {
        let _ = (older, newer);
        Ok(Survivor::Newer)
    }

    /// Whether a surviving record is kept at all at `now_ms`.
    fn retain(&mut self, record: &Record<'_>, now_ms: i64) -> Result<bool, Error> {
        let _ = (record, now_ms);
        Ok(true)
    }
}

#[doc(hidden)]
pub fn init<C: Compactor>(
    slot: &'static LocalKey<RefCell<Option<C>>>,
    config: Vec<(String, String)>,
) -> Result<wit::Parts, wit::Error> {
    let plugin = C::new(&Config::new(config)).map_err(|e| e.into_wit(0))?;
    slot.with_borrow_mut(|s| *s = Some(plugin));
    Ok(C::PARTS)
}

#[doc(hidden)]
pub fn keys<C: Compactor>(
    slot: &'static LocalKey<RefCell<Option<C>>>,
    batch: wit::RecordBatch,
) -> Result<wit::CompactionKeys, wit::Error> {
    let batch = Batch::new(batch);
    slot.with_borrow_mut(|s| {
        let plugin = s.as_mut().ok_or_else(crate::error::not_initialised)?;
        let mut out = wit::CompactionKeys {
            data: Vec::new(),
            keys: Vec::with_capacity(batch.len()),
        };
        for r in batch.iter() {
            let key = plugin.key(&r).map_err(|e| e.into_wit(r.index()))?;
            out.keys.push(match key {
                None => None,
                Some(k) => {
                    let span = span_at(out.data.len(), k.len())
                        .ok_or_else(|| wit::Error::Failed("compaction keys exceed 4 GiB".into()))?;
                    out.data.extend_from_slice(&k);
                    Some(span)
                }
            });
        }
        Ok(out)
    })
}

#[doc(hidden)]
pub fn survivor<C: Compactor>(
    slot: &'static LocalKey<RefCell<Option<C>>>,
    older: wit::RecordBatch,
    newer: wit::RecordBatch,
) -> Result<Vec<Survivor>, wit::Error> {
    let (older, newer) = (Batch::new(older), Batch::new(newer));
    if older.len() != newer.len() {
        return Err(wit::Error::Failed(format!(
            "survivor got {} older and {} newer records; they must pair up",
            older.len(),
            newer.len()
        )));
    }
    slot.with_borrow_mut(|s| {
        let plugin = s.as_mut().ok_or_else(crate::error::not_initialised)?;
        older
            .iter()
            .zip(newer.iter())
            .map(|(o, n)| plugin.survivor(&o, &n).map_err(|e| e.into_wit(o.index())))
            .collect()
    })
}

#[doc(hidden)]
pub fn retain<C: Compactor>(
    slot: &'static LocalKey<RefCell<Option<C>>>,
    batch: wit::RecordBatch,
    now_ms: i64,
) -> Result<Vec<bool>, wit::Error> {
    let batch = Batch::new(batch);
    slot.with_borrow_mut(|s| {
        let plugin = s.as_mut().ok_or_else(crate::error::not_initialised)?;
        batch
            .iter()
            .map(|r| plugin.retain(&r, now_ms).map_err(|e| e.into_wit(r.index())))
            .collect()
    })
}

fn span_at(offset: usize, len: usize) -> Option<wit::Span> {
    Some(wit::Span {
        offset: u32::try_from(offset).ok()?,
        len: u32::try_from(len).ok()?,
    })
}

/// Exports a [`Compactor`] as the component's `compactor` world.
#[macro_export]
macro_rules! export_compactor {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct QuiverCompactorExport;
            impl $crate::bindings::compactor::Guest for QuiverCompactorExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<$crate::Parts, $crate::bindings::wit::Error> {
                    $crate::compactor::init::<$plugin>(&STATE, config)
                }
                fn keys(
                    batch: $crate::bindings::wit::RecordBatch,
                ) -> ::std::result::Result<
                    $crate::bindings::wit::CompactionKeys,
                    $crate::bindings::wit::Error,
                > {
                    $crate::compactor::keys::<$plugin>(&STATE, batch)
                }
                fn survivor(
                    older: $crate::bindings::wit::RecordBatch,
                    newer: $crate::bindings::wit::RecordBatch,
                ) -> ::std::result::Result<
                    ::std::vec::Vec<$crate::Survivor>,
                    $crate::bindings::wit::Error,
                > {
                    $crate::compactor::survivor::<$plugin>(&STATE, older, newer)
                }
                fn retain(
                    batch: $crate::bindings::wit::RecordBatch,
                    now_ms: i64,
                ) -> ::std::result::Result<::std::vec::Vec<bool>, $crate::bindings::wit::Error>
                {
                    $crate::compactor::retain::<$plugin>(&STATE, batch, now_ms)
                }
            }
            $crate::bindings::compactor::__export_compactor!(
                QuiverCompactorExport with_types_in $crate::bindings::compactor
            );
        };
    };
}
