#!/usr/bin/env bash
# Builds the Python partitioner with componentize-py 0.25 into "$2", caching the
# virtualenv under "$1/py". Called by plugins/build.sh.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
wit="$here/../../wit"
cache="$1/py"
out="$2"

if ! command -v python3 >/dev/null 2>&1; then
    echo "py-key-sum: python3 is not installed; skipping the Python plugin" >&2
    exit 1
fi
if [ ! -x "$cache/venv/bin/componentize-py" ]; then
    echo "py-key-sum: installing componentize-py 0.25 into $cache/venv" >&2
    mkdir -p "$cache"
    python3 -m venv "$cache/venv" || { echo "py-key-sum: python3 -m venv failed (install python3-venv)" >&2; exit 1; }
    "$cache/venv/bin/pip" install --quiet 'componentize-py==0.25.*' \
        || { echo "py-key-sum: pip could not install componentize-py" >&2; exit 1; }
fi
# Rebuild only when the source, the WIT or the tool changed.
if [ -f "$out" ] && [ "$out" -nt "$here/app.py" ] && [ "$out" -nt "$wit/plugin.wit" ] \
    && [ "$out" -nt "$cache/venv/bin/componentize-py" ]; then
    exit 0
fi
echo "py-key-sum: building with componentize-py" >&2
cd "$here"
export PYTHONDONTWRITEBYTECODE=1
"$cache/venv/bin/componentize-py" -d "$wit" -w partitioner componentize app -o "$out.tmp" >/dev/null
mv "$out.tmp" "$out"
