#!/usr/bin/env bash
# Debian's PostgreSQL for the compose-equivalent deployment test (tests/airflow/test_postgres_deployment.py).
# Idempotent (dpkg-query only when installed); starts no server: the test runs its own on a free port.
set -euo pipefail
if [[ "$(dpkg-query -W -f='${db:Status-Status}' postgresql 2>/dev/null || true)" == installed ]]; then
    echo "install-postgres.sh: postgresql present"
    exit 0
fi
if [[ $EUID -ne 0 ]]; then
    echo "install-postgres.sh: postgresql missing and not root; cannot install" >&2
    exit 1
fi
POLICY=/usr/sbin/policy-rc.d
made_policy=0
trap '[[ $made_policy == 1 ]] && rm -f "$POLICY"' EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# temporary, created by faxflow tests/airflow/install-postgres.sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    made_policy=1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends postgresql
echo "install-postgres.sh: done"
