#!/usr/bin/env bash
# Makes sure Debian's chromium and chromium-driver of the given version (default: what Debian
# bookworm ships now, from bookworm-security) are installed: the dashboard's tests drive the real
# browser headless through WebDriver (/usr/bin/chromium, /usr/bin/chromedriver). Installs both with
# apt-get when missing (needs root, as on CI); refuses another installed version, which the tests
# were not checked with. When Debian replaces the pinned build (a security update), apt-get fails
# with a clear message: set CHROMIUM_VERSION (or the argument) to the version it ships then.
set -euo pipefail
want="${1:-156.0.8078.114-1~deb12u1}"
installed() { dpkg-query -W -f='${Status} ${Version}\n' "$1" 2>/dev/null |
  awk '$1 == "install" && $3 == "installed" {print $4}'; }
have_browser="$(installed chromium || true)"
have_driver="$(installed chromium-driver || true)"
if [[ "$have_browser" == "$want" && "$have_driver" == "$want" ]]; then
  echo "chromium $want"
  exit 0
fi
for pkg in chromium chromium-driver; do
  have="$(installed "$pkg" || true)"
  if [[ -n "$have" && "$have" != "$want" ]]; then
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
