#!/usr/bin/env bash
# Install the Debian packages needed by the real-cluster test sandbox.
# Idempotent: a fast no-op (dpkg-query only) when everything is installed.
# Must run as root when something is missing. Starts no daemons: if
# /usr/sbin/policy-rc.d does not exist, a temporary one exiting 101 is put in
# place for the duration of the install so maintainer scripts do not start
# sshd on :22, munged or mariadb.
#
# Env: WITH_DBD=1 (default) also installs slurmdbd + mariadb-server.
set -euo pipefail

WITH_DBD="${WITH_DBD:-1}"
PKGS=(slurmctld slurmd slurm-client munge openssh-server openssh-client acl)
if [[ "$WITH_DBD" == 1 ]]; then
    PKGS+=(slurmdbd mariadb-server)
fi

missing=()
for p in "${PKGS[@]}"; do
    st="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
    [[ "$st" == installed ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
    echo "install.sh: all packages present (${PKGS[*]})"
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "install.sh: missing packages (${missing[*]}) and not root; cannot install" >&2
    exit 1
fi

echo "install.sh: installing ${missing[*]}"
POLICY=/usr/sbin/policy-rc.d
made_policy=0
cleanup() {
    if [[ $made_policy == 1 ]]; then rm -f "$POLICY"; fi
}
trap cleanup EXIT
if [[ ! -e "$POLICY" ]]; then
    printf '#!/bin/sh\n# temporary, created by faxflow tests/cluster/install.sh\nexit 101\n' >"$POLICY"
    chmod 0755 "$POLICY"
    made_policy=1
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
apt-get "${APT_OPTS[@]}" update -qq
apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${missing[@]}"

# Belt and braces: policy-rc.d should have prevented any daemon start; we do
# not touch any daemon here (never kill by name on a shared machine).
echo "install.sh: done"
