#!/usr/bin/env bash
# Creates (or updates) the Python environment of the end-to-end suite at <repo>/.venv and prints
# its path. Idempotent: the venv is created only when missing, and tests/python/requirements.txt is
# installed only when it changed since the last install (a stamp inside .venv keeps its sha256).
# Needs only CPython 3.11+ with pip and access to PyPI.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="$repo/.venv"
req="$repo/tests/python/requirements.txt"
stamp="$venv/.requirements.sha256"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "python-env: $python is missing or older than 3.11 (set PYTHON=...)" >&2
        exit 1
    fi
    echo "python-env: creating $venv" >&2
    "$python" -m venv "$venv"
fi

want="$(sha256sum "$req" | cut -d' ' -f1)"
have="$(cat "$stamp" 2>/dev/null || true)"
if [[ "$want" != "$have" ]]; then
    echo "python-env: installing $req" >&2
    rm -f "$stamp"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
    echo "$want" >"$stamp"
fi

echo "$venv"
