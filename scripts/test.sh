#!/usr/bin/env bash
# The whole test suite, exactly as CI runs it (.ci/run calls this script).
# Installs what the tests need (the Python venv with the YDB SDK, grpcio and grpcurl, pinned in
# tests/python/requirements.txt; Debian's etcd-server and chromium, pinned by version), checks formatting and
# lints, builds the server binary, then runs every Rust test and the Python end-to-end suite
# against the real binaries.
set -euo pipefail
cd "$(dirname "$0")/.."

# A clean CI run builds everything once: incremental caches would only take disk space.
if [[ "${CI:-}" == "true" ]]; then
    export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
fi
echo "==> disk free where the build goes: $(df -h --output=avail . | tail -1 | tr -d ' ')"

echo "==> Python environment (tests/python/requirements.txt)"
venv="$(bash scripts/python-env.sh)"

echo "==> etcd (Debian's etcd-server ${ETCD_VERSION:=3.4.23}, for the high-availability tests)"
bash scripts/etcd-env.sh "$ETCD_VERSION"

echo "==> chromium (Debian's chromium and chromium-driver, for the dashboard's browser tests)"
bash scripts/browser-env.sh ${CHROMIUM_VERSION:+"$CHROMIUM_VERSION"}

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "==> cargo build (the binaries the end-to-end tests start)"
cargo build --workspace --bins --locked
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export ARBITER_SERVER_BIN="$target_dir/debug/arbiter-server"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT
status=0

echo "==> cargo test"
set +e
cargo test --workspace --locked --no-fail-fast 2>&1 | tee -a "$log"
rust_status=${PIPESTATUS[0]}
set -e
[[ $rust_status -eq 0 ]] || status=$rust_status

echo "==> pytest tests/python (YDB SDK stubs and grpcurl against the real binary)"
set +e
"$venv/bin/python" -m pytest tests/python -q -p no:cacheprovider 2>&1 | tee -a "$log"
py_status=${PIPESTATUS[0]}
set -e
[[ $py_status -eq 0 ]] || status=$py_status

echo "==> build directory: $(du -sh "$target_dir" 2>/dev/null | cut -f1)"

# One closing line for the whole run: the sum over every Rust test binary and pytest.
awk '
  /^test result:/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed;?$/) p += $i
      if ($(i+1) ~ /^failed;?$/) f += $i
    }
  }
  /^(=+ )?[0-9]+ (passed|failed)/ && / in [0-9.]+s/ {
    for (i = 1; i <= NF; i++) {
      if ($(i+1) ~ /^passed,?$/) p += $i
      if ($(i+1) ~ /^(failed|errors?),?$/) f += $i
    }
  }
  END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
