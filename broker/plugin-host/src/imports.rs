//! What a component imports, read from its bytes before anything is compiled.
//!
//! Compiling a large component (an interpreter packed as a component is tens of MiB)
//! takes seconds; a component importing something the host cannot provide would be
//! refused after all that work. Its top-level import section is a few hundred bytes
//! near the start, so it is read first with `wasmparser` (the parser wasmtime itself
//! uses) and the upload is refused at once, naming the import.

use wasmparser::{ComponentTypeRef, Parser, Payload};

use crate::PluginError;

/// Interfaces a plugin may import. WASI is linked with nothing granted (see
/// `state.rs`), so importing it is harmless; anything else has no provider.
pub(crate) const ALLOWED_IMPORTS: &[&str] = &[
    "quiver:plugin/",
    "wasi:cli/",
    "wasi:io/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

/// True when the host provides `import` (a name such as `wasi:io/streams@0.2.6`).
pub(crate) fn provided(import: &str) -> bool {
    ALLOWED_IMPORTS.iter().any(|p| import.starts_with(p))
}

/// Refuses `bytes` when the component's own imports (not those of the modules and
/// components nested in it, which it satisfies itself) name an instance, function or
/// component the host does not provide. Bytes that do not parse are left to the compiler, whose message is the
/// better one; only the imports matter here.
pub(crate) fn check(plugin: &str, bytes: &[u8]) -> Result<(), PluginError> {
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else {
            return Ok(());
        };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) => match depth.checked_sub(1) {
                Some(outer) => depth = outer,
                None => return Ok(()),
            },
            Payload::ComponentImportSection(reader) if depth == 0 => {
                for import in reader {
                    let Ok(import) = import else {
                        return Ok(());
                    };
                    // A world that `use`s types imports them by plain name (`config`,
                    // `record-batch`); they name types of imported interfaces and need
                    // no provider of their own.
                    if matches!(import.ty, ComponentTypeRef::Type(_)) {
                        continue;
                    }
                    if !provided(import.name.name) {
                        return Err(PluginError::ForbiddenImport {
                            plugin: plugin.to_string(),
                            import: import.name.name.to_string(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allowed_prefixes_match_whole_packages() {
        assert!(provided("wasi:io/streams@0.2.6"));
        assert!(provided("quiver:plugin/log@0.1.0"));
        assert!(!provided("wasi:http/outgoing-handler@0.2.6"));
        assert!(!provided("test:forbidden/steal"));
        assert!(!provided("wasi:iox/streams"));
    }

    #[test]
    fn bytes_that_do_not_parse_are_left_to_the_compiler() {
        assert!(check("junk", b"\0asm not really").is_ok());
        assert!(check("empty", b"").is_ok());
    }
}
