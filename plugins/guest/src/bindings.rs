//! wit-bindgen's output for the three worlds of `wit/plugin.wit`.
//!
//! The partitioner world generates the shared `types` and `log` interfaces; the other two
//! reuse them through `with`, so one `RecordBatch` type serves every world. Nothing here
//! ends up in a plugin unless its export macro is used: with `pub_export_macro`,
//! wit-bindgen embeds a world's type information only where the world is exported, so a
//! component built with this crate claims exactly the world its author chose.
//!
//! `too_many_arguments` is allowed in each module because the generated lowering of
//! `record-batch` takes one argument per flattened field.

/// Bindings of the `partitioner` world, plus the shared interfaces.
pub mod partitioner {
    #![allow(clippy::too_many_arguments)]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "partitioner",
        pub_export_macro: true,
        export_macro_name: "__export_partitioner",
        default_bindings_module: "::quiver_plugin::bindings::partitioner",
        runtime_path: "::quiver_plugin::__private::wit_bindgen::rt",
    });
}

/// Bindings of the `filter` world.
pub mod filter {
    #![allow(clippy::too_many_arguments)]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "filter",
        pub_export_macro: true,
        export_macro_name: "__export_filter",
        default_bindings_module: "::quiver_plugin::bindings::filter",
        runtime_path: "::quiver_plugin::__private::wit_bindgen::rt",
        with: {
            "quiver:plugin/types@0.1.0": crate::bindings::partitioner::quiver::plugin::types,
            "quiver:plugin/log@0.1.0": crate::bindings::partitioner::quiver::plugin::log,
        },
    });
}

/// Bindings of the `compactor` world.
pub mod compactor {
    #![allow(clippy::too_many_arguments)]
    wit_bindgen::generate!({
        path: "../../wit",
        world: "compactor",
        pub_export_macro: true,
        export_macro_name: "__export_compactor",
        default_bindings_module: "::quiver_plugin::bindings::compactor",
        runtime_path: "::quiver_plugin::__private::wit_bindgen::rt",
        with: {
            "quiver:plugin/types@0.1.0": crate::bindings::partitioner::quiver::plugin::types,
            "quiver:plugin/log@0.1.0": crate::bindings::partitioner::quiver::plugin::log,
        },
    });
}

pub use partitioner::quiver::plugin::{log as wit_log, types as wit};
