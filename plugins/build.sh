#!/usr/bin/env bash
# Builds every example plugin into target/plugins/wasm/<name>.wasm, and the test plugins
# (deliberately broken: they loop, hoard memory, trap, or import what no host provides)
# into target/plugins/test-wasm/<name>.wasm, so that `quiver dev --plugins
# target/plugins/wasm` loads only the examples.
#
# Idempotent and incremental: cargo and the caches under target/plugins skip work already
# done. Rust plugins always build; the Python and JavaScript ones build when their
# toolchains (python3 with pip, node with npm) are present, and are skipped with a
# message saying what is missing otherwise. Set QUIVER_PLUGINS_RUST_ONLY=1 to skip them.
#
# Usage: plugins/build.sh            (from anywhere)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
target="$root/target/plugins"
out="$target/wasm"
test_out="$target/test-wasm"
# The plugins that exist only for the tests.
test_plugins=" misbehave forbidden-import "
mkdir -p "$out" "$test_out"

# One build at a time: tests start this script from several threads and processes at
# once, and two concurrent `rustup target add` runs break each other's install.
exec 9>"$target/.build.lock"
flock 9

# RUSTUP_AUTO_INSTALL=0 on our machines: a missing target is never installed implicitly.
if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        echo "build.sh: adding the wasm32-wasip2 target" >&2
        rustup target add wasm32-wasip2
    fi
fi

echo "build.sh: building Rust plugins" >&2
(cd "$here" && cargo build --release --target wasm32-wasip2 --workspace --target-dir "$target" --quiet)
for manifest in "$here"/*/Cargo.toml; do
    name="$(basename "$(dirname "$manifest")")"
    [ "$name" = guest ] && continue
    artifact="$target/wasm32-wasip2/release/${name//-/_}.wasm"
    dest="$out"
    if [[ "$test_plugins" == *" $name "* ]]; then
        dest="$test_out"
        # Left there by builds from before the split.
        rm -f "$out/$name.wasm"
    fi
    # Copy only when changed, so the file's timestamp says when the plugin last changed.
    if ! cmp -s "$artifact" "$dest/$name.wasm" 2>/dev/null; then
        cp "$artifact" "$dest/$name.wasm"
    fi
done

if [ "${QUIVER_PLUGINS_RUST_ONLY:-0}" = 1 ]; then
    echo "build.sh: QUIVER_PLUGINS_RUST_ONLY=1, skipping Python and JavaScript plugins" >&2
    exit 0
fi

for script in "$here"/*/build-plugin.sh; do
    [ -e "$script" ] || continue
    name="$(basename "$(dirname "$script")")"
    if ! bash "$script" "$target" "$out/$name.wasm"; then
        echo "build.sh: $name was not built (see above); tests that need it are skipped" >&2
    fi
done
echo "build.sh: plugins are in $out, test plugins in $test_out" >&2
