#!/usr/bin/env bash
# Builds the JavaScript filter with componentize-js 0.23 into "$2", caching the npm
# packages under "$1/js". Called by plugins/build.sh.
#
# componentize-js is called directly (`jco componentize` failed on a path error with these
# versions), with every WASI feature disabled (`-d http fetch-event` included, or the
# component imports wasi:http), so the component imports nothing but quiver:plugin/log
# and what the JS engine itself needs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit"
cache="$1/js"
out="$2"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "js-value-contains: node and npm are not installed; skipping the JavaScript plugin" >&2
    exit 1
fi
tool="$cache/node_modules/.bin/componentize-js"
if [ ! -x "$tool" ]; then
    echo "js-value-contains: installing componentize-js 0.23 and jco 1.35 into $cache" >&2
    mkdir -p "$cache"
    (cd "$cache" && { [ -f package.json ] || npm init -y >/dev/null; } \
        && npm install --no-audit --no-fund --silent \
            '@bytecodealliance/componentize-js@0.23' '@bytecodealliance/jco@1.35') \
        || { echo "js-value-contains: npm could not install componentize-js" >&2; exit 1; }
fi
if [ -f "$out" ] && [ "$out" -nt "$here/filter.js" ] && [ "$out" -nt "$wit/plugin.wit" ] && [ "$out" -nt "$tool" ]; then
    exit 0
fi
echo "js-value-contains: building with componentize-js" >&2
"$tool" "$here/filter.js" --wit "$wit" --world-name filter \
    -d stdio -d random -d clocks -d http -d fetch-event -o "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
