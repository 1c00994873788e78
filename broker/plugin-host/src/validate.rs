//! Checking at load time that a component is a plugin Quiver can run.
//!
//! Two questions, each with an error that names what is wrong: does it import only what
//! the host provides (already answered from the bytes before compiling, see `imports.rs`;
//! asked again of the compiled type, which costs nothing), and which world do its
//! exports satisfy. Function signatures are checked afterwards by the world's
//! `*Pre::new`, whose error names the function.

use std::collections::BTreeSet;

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::{PluginError, PluginKind, imports};

/// Checks the imports of `component` and returns the kind it exports: `hint` when given
/// and satisfied, otherwise the one kind whose exports are all present.
pub(crate) fn check(
    engine: &Engine,
    component: &Component,
    plugin: &str,
    hint: Option<PluginKind>,
) -> Result<PluginKind, PluginError> {
    let ty = component.component_type();
    if let Some((name, _)) = ty
        .imports(engine)
        .find(|(name, _)| !imports::provided(name))
    {
        return Err(PluginError::ForbiddenImport {
            plugin: plugin.to_string(),
            import: name.to_string(),
        });
    }
    let exports: BTreeSet<&str> = ty.exports(engine).map(|(name, _)| name).collect();
    let listed = || {
        if exports.is_empty() {
            "it exports nothing".to_string()
        } else {
            let names: Vec<&str> = exports.iter().copied().collect();
            format!("it exports {}", names.join(", "))
        }
    };
    let missing = |kind: PluginKind| -> Vec<&'static str> {
        kind.exports()
            .iter()
            .copied()
            .filter(|e| !exports.contains(e))
            .collect()
    };
    match hint {
        Some(kind) => {
            let absent = missing(kind);
            if absent.is_empty() {
                Ok(kind)
            } else {
                Err(PluginError::WrongWorld {
                    plugin: plugin.to_string(),
                    expected: kind.to_string(),
                    reason: format!(
                        "missing export{} `{}` of world {kind}; {}",
                        if absent.len() == 1 { "" } else { "s" },
                        absent.join("`, `"),
                        listed()
                    ),
                })
            }
        }
        None => {
            let complete: Vec<PluginKind> = PluginKind::ALL
                .into_iter()
                .filter(|k| missing(*k).is_empty())
                .collect();
            match complete.as_slice() {
                [kind] => Ok(*kind),
                [] => Err(PluginError::WrongWorld {
                    plugin: plugin.to_string(),
                    expected: "plugin".to_string(),
                    reason: format!(
                        "it satisfies no world: a partitioner exports init and partition, \
                         a filter init and keep, a compactor init, keys, survivor and \
                         retain; {}",
                        listed()
                    ),
                }),
                _ => Err(PluginError::WrongWorld {
                    plugin: plugin.to_string(),
                    expected: "plugin".to_string(),
                    reason: format!(
                        "it satisfies several worlds at once; upload it with a kind; {}",
                        listed()
                    ),
                }),
            }
        }
    }
}
