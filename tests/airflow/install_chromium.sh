#!/usr/bin/env bash
# Install Debian's chromium for the report browser test, only when it is missing.
# A fast no-op (dpkg-query only) when installed; must run as root otherwise.
set -euo pipefail
status="$(dpkg-query -W -f='${db:Status-Status}' chromium 2>/dev/null || true)"
if [[ "$status" == installed ]]; then
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "install_chromium.sh: chromium is missing and this is not root; cannot install" >&2
    exit 1
fi
echo "install_chromium.sh: installing chromium"
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null \
    || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium >/dev/null; }
