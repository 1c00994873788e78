//! The `partitioner` world: choose a partition for each record.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::bindings::wit;
use crate::{Batch, Config, Error, Parts, Record};

/// A partitioner. Implement it, then export it with [`export_partitioner!`](crate::export_partitioner).
pub trait Partitioner: Sized + 'static {
    /// The parts of a record [`partition`](Self::partition) reads.
    const PARTS: Parts = Parts::KEYS;

    /// Builds the plugin from the topic binding's parameters.
    fn new(config: &Config) -> Result<Self, Error>;

    /// The partition of one record, below `partition_count`.
    fn partition(&mut self, record: &Record<'_>, partition_count: u32) -> Result<u32, Error>;
}

#[doc(hidden)]
pub fn init<P: Partitioner>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    config: Vec<(String, String)>,
) -> Result<wit::Parts, wit::Error> {
    let plugin = P::new(&Config::new(config)).map_err(|e| e.into_wit(0))?;
    slot.with_borrow_mut(|s| *s = Some(plugin));
    Ok(P::PARTS)
}

#[doc(hidden)]
pub fn partition<P: Partitioner>(
    slot: &'static LocalKey<RefCell<Option<P>>>,
    batch: wit::RecordBatch,
    partition_count: u32,
) -> Result<Vec<u32>, wit::Error> {
    let batch = Batch::new(batch);
    slot.with_borrow_mut(|s| {
        let plugin = s.as_mut().ok_or_else(crate::error::not_initialised)?;
        batch
            .iter()
            .map(|r| {
                plugin
                    .partition(&r, partition_count)
                    .map_err(|e| e.into_wit(r.index()))
            })
            .collect()
    })
}

/// Exports a [`Partitioner`] as the component's `partitioner` world.
///
/// ```ignore
/// struct First;
/// impl quiver_plugin::Partitioner for First { /* ... */ }
/// quiver_plugin::export_partitioner!(First);
/// ```
#[macro_export]
macro_rules! export_partitioner {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct QuiverPartitionerExport;
            impl $crate::bindings::partitioner::Guest for QuiverPartitionerExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<$crate::Parts, $crate::bindings::wit::Error> {
                    $crate::partitioner::init::<$plugin>(&STATE, config)
                }
                fn partition(
                    batch: $crate::bindings::wit::RecordBatch,
                    partition_count: u32,
                ) -> ::std::result::Result<::std::vec::Vec<u32>, $crate::bindings::wit::Error>
                {
                    $crate::partitioner::partition::<$plugin>(&STATE, batch, partition_count)
                }
            }
            $crate::bindings::partitioner::__export_partitioner!(
                QuiverPartitionerExport with_types_in $crate::bindings::partitioner
            );
        };
    };
}
