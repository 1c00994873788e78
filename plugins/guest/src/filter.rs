//! The `filter` world: keep or drop each record a consumer fetches.

use std::cell::RefCell;
use std::thread::LocalKey;

use crate::bindings::wit;
use crate::{Batch, Config, Error, Parts, Record};

/// A filter. Implement it, then export it with [`export_filter!`](crate::export_filter).
pub trait Filter: Sized + 'static {
    /// The parts of a record [`keep`](Self::keep) reads.
    const PARTS: Parts = Parts::all();

    /// Builds the plugin from the consumer's filter parameters.
    fn new(config: &Config) -> Result<Self, Error>;

    /// True keeps the record.
    fn keep(&mut self, record: &Record<'_>) -> Result<bool, Error>;
}

#[doc(hidden)]
pub fn init<F: Filter>(
    slot: &'static LocalKey<RefCell<Option<F>>>,
    config: Vec<(String, String)>,
) -> Result<wit::Parts, wit::Error> {
    let plugin = F::new(&Config::new(config)).map_err(|e| e.into_wit(0))?;
    slot.with_borrow_mut(|s| *s = Some(plugin));
    Ok(F::PARTS)
}

#[doc(hidden)]
pub fn keep<F: Filter>(
    slot: &'static LocalKey<RefCell<Option<F>>>,
    batch: wit::RecordBatch,
) -> Result<Vec<bool>, wit::Error> {
    let batch = Batch::new(batch);
    slot.with_borrow_mut(|s| {
        let plugin = s.as_mut().ok_or_else(crate::error::not_initialised)?;
        batch
            .iter()
            .map(|r| plugin.keep(&r).map_err(|e| e.into_wit(r.index())))
            .collect()
    })
}

/// Exports a [`Filter`] as the component's `filter` world.
#[macro_export]
macro_rules! export_filter {
    ($plugin:ty) => {
        const _: () = {
            ::std::thread_local! {
                static STATE: ::std::cell::RefCell<::std::option::Option<$plugin>> =
                    const { ::std::cell::RefCell::new(::std::option::Option::None) };
            }
            struct QuiverFilterExport;
            impl $crate::bindings::filter::Guest for QuiverFilterExport {
                fn init(
                    config: ::std::vec::Vec<(::std::string::String, ::std::string::String)>,
                ) -> ::std::result::Result<$crate::Parts, $crate::bindings::wit::Error> {
                    $crate::filter::init::<$plugin>(&STATE, config)
                }
                fn keep(
                    batch: $crate::bindings::wit::RecordBatch,
                ) -> ::std::result::Result<::std::vec::Vec<bool>, $crate::bindings::wit::Error>
                {
                    $crate::filter::keep::<$plugin>(&STATE, batch)
                }
            }
            $crate::bindings::filter::__export_filter!(
                QuiverFilterExport with_types_in $crate::bindings::filter
            );
        };
    };
}
