#!/usr/bin/env bash
# Makes sure Debian's chromium and chromium-driver of the pinned version are installed: the
# dashboard's tests drive the real browser headless through WebDriver (/usr/bin/chromium,
# /usr/bin/chromedriver). The pin is Chromium 156.0.8078 (the tests were checked with
# 156.0.8078.114-1~deb12u1 from bookworm-security); any Debian build of it is accepted, so a
# security rebuild does not break the install, as etcd-env.sh pins etcd 3.4.23*. Installs both
# with apt-get when missing (needs root, as on CI); refuses another installed version. Override
# with the argument or CHROMIUM_VERSION (an apt version or glob).
set -euo pipefail
want="${1:-${CHROMIUM_VERSION:-156.0.8078.*}}"
installed() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
  awk '$1 == "install" && $3 == "installed" {print $4}'; }
have_browser="$(installed chromium || true)"
have_driver="$(installed chromium-driver || true)"
# shellcheck disable=SC2053 # $want is a glob on purpose
if [[ -n "$have_browser" && "$have_browser" == $want && "$have_driver" == "$have_browser" ]]; then
  echo "chromium $have_browser"
  exit 0
fi
for pkg in chromium chromium-driver; do
  have="$(installed "$pkg" || true)"
  # shellcheck disable=SC2053
  if [[ -n "$have" && "$have" != $want ]]; then
    echo "error: $pkg $have is installed, the tests need $want (Debian's $pkg $want)" >&2
    exit 1
  fi
done
if [[ "$(id -u)" != 0 ]]; then
  echo "error: chromium is missing; install it as root:" \
    "apt-get update && apt-get install chromium=$want chromium-driver=$want" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
if ! apt-get install -y -q --no-install-recommends "chromium=$want" "chromium-driver=$want" \
  fonts-dejavu-core >/dev/null; then
  echo "error: apt-get could not install chromium $want; if Debian ships a newer build now," \
    "see 'apt-cache policy chromium' and set CHROMIUM_VERSION" >&2
  exit 1
fi
/usr/bin/chromium --version
