//! Repository hygiene as a test: the layering ARCHITECTURE.md promises, checked on the
//! source so that a shortcut across it fails CI instead of waiting for a reviewer.

use std::path::{Path, PathBuf};

/// Words that only the QUIC door may use: wire structs, frames, wire error codes and
/// quinn's stream types.
const WIRE_WORDS: &[&str] = &[
    "quiver_proto::api",
    "quiver_proto::frame::",
    "ErrorCode",
    "WireError",
    "quinn::",
];

/// Files outside `src/quic/` that may still name those words: the endpoint's TLS and
/// transport settings, the wiring in `lib.rs`, and the default frame bound in the config.
const DOOR_FILES: &[&str] = &["lib.rs", "tls.rs", "transport.rs", "config/mod.rs"];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("read source dir");
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_wire_type_below_the_front_door() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offenders = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src");
        if rel.starts_with("quic") || DOOR_FILES.iter().any(|d| rel == Path::new(d)) {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        for word in WIRE_WORDS {
            if text.contains(word) {
                offenders.push(format!("{} uses {word}", rel.display()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "only broker/server/src/quic/ may speak the wire protocol:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn domain_crates_do_not_depend_on_wire_types() {
    let broker = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for krate in ["group", "storage", "plugin-host"] {
        let src = broker.join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read source");
            for word in ["quiver_proto::api", "ErrorCode", "WireError"] {
                assert!(
                    !text.contains(word),
                    "{} uses {word}: domain crates speak their own types",
                    file.display()
                );
            }
        }
    }
}
