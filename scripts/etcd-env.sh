#!/usr/bin/env bash
# Makes sure Debian's etcd-server of the given version (default 3.4.23) is installed: the
# high-availability tests start real etcd members on loopback. Installs it with apt-get when it
# is missing (needs root, as on CI); refuses another version, which the tests were not written for.
set -euo pipefail
want="${1:-3.4.23}"
have="$(etcd --version 2>/dev/null | awk '/^etcd Version:/ {print $3}' || true)"
if [[ "$have" == "$want" ]]; then
  echo "etcd $have"
  exit 0
fi
if [[ -n "$have" ]]; then
  echo "error: etcd $have is installed, the tests need $want (Debian's etcd-server $want)" >&2
  exit 1
fi
if [[ "$(id -u)" != 0 ]]; then
  echo "error: etcd is missing; install it as root: apt-get update && apt-get install etcd-server=$want*" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "etcd-server=$want*" >/dev/null
# The package may start a system etcd on 2379; the tests use their own members on free ports.
if command -v systemctl >/dev/null 2>&1; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi
pkill -x etcd >/dev/null 2>&1 || true
etcd --version | head -1
