#!/usr/bin/env bash
# Start the faxflow real-cluster sandbox: munged, MariaDB + slurmdbd,
# slurmctld, slurmd, a key-only test user and sshd, all on loopback, all state
# under $RUN. Must run as root; needs no systemd. Writes $RUN/env.sh.
#
# Env (defaults):
#   RUN=tests/cluster/run   SLURM_PORT_BASE=26817 (ctld, +1 slurmd, +2 slurmdbd)
#   SSH_PORT=22922  DB_PORT=23306  SANDBOX_CPUS=8  SANDBOX_MINJOBAGE=300
#   TEST_USER=fftest  WITH_DBD=1  WARMUP=1
#   SCHED_PARAMS=batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000
#   SANDBOX_PYTHON=<project>/.venv/bin/python  (made reachable for TEST_USER)
#   GRANT_PYTHON=1  (add a traverse-only ACL for TEST_USER on ancestors of the
#                    interpreter that others cannot traverse, e.g. /root; undone by down.sh)
#   CLEANUP_ON_FAIL=1 (on failure run down.sh with KEEP_RUN=1 so no daemon lingers)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $EUID -eq 0 ]] || sb_die "up.sh must run as root"
sb_resolve_run

SLURM_PORT_BASE="${SLURM_PORT_BASE:-26817}"
SSH_PORT="${SSH_PORT:-22922}"
DB_PORT="${DB_PORT:-23306}"
SANDBOX_CPUS="${SANDBOX_CPUS:-8}"
SANDBOX_MINJOBAGE="${SANDBOX_MINJOBAGE:-300}"
TEST_USER="${TEST_USER:-fftest}"
WITH_DBD="${WITH_DBD:-1}"
WARMUP="${WARMUP:-1}"
SCHED_PARAMS="${SCHED_PARAMS:-batch_sched_delay=0,sched_min_interval=0,default_queue_depth=1000}"
SANDBOX_PYTHON="${SANDBOX_PYTHON:-$SB_PROJECT_ROOT/.venv/bin/python}"
GRANT_PYTHON="${GRANT_PYTHON:-1}"
CLEANUP_ON_FAIL="${CLEANUP_ON_FAIL:-1}"
SLURMCTLD_PORT=$SLURM_PORT_BASE
SLURMD_PORT=$((SLURM_PORT_BASE + 1))
SLURMDBD_PORT=$((SLURM_PORT_BASE + 2))

[[ "$TEST_USER" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || sb_die "bad TEST_USER '$TEST_USER'"
for v in SLURM_PORT_BASE SSH_PORT DB_PORT SANDBOX_CPUS SANDBOX_MINJOBAGE; do
    [[ "${!v}" =~ ^[0-9]+$ ]] || sb_die "$v must be an integer (got '${!v}')"
done
((SANDBOX_CPUS >= 1)) || sb_die "SANDBOX_CPUS must be >= 1"
for b in munged mungekey slurmctld slurmd sbatch scontrol sinfo /usr/sbin/sshd ssh-keygen setfacl; do
    command -v "$b" >/dev/null || sb_die "$b not found: run tests/cluster/install.sh first"
done
if [[ "$WITH_DBD" == 1 ]]; then
    for b in slurmdbd sacctmgr mariadbd mariadb-install-db mariadb; do
        command -v "$b" >/dev/null || sb_die "$b not found: run tests/cluster/install.sh first"
    done
fi

# ------------------------------------------------------------ refuse if up
if [[ -e "$RUN/started" ]]; then
    sb_die "a sandbox is already up in $RUN (or was not cleaned up): run tests/cluster/down.sh first"
fi
if [[ -d "$RUN" && -n "$(ls -A "$RUN")" && ! -e "$RUN/.faxflow-sandbox" ]]; then
    sb_die "$RUN exists, is not empty and is not a sandbox dir; refusing to use it"
fi
ports=("$SLURMCTLD_PORT" "$SLURMD_PORT" "$SSH_PORT")
[[ "$WITH_DBD" == 1 ]] && ports+=("$SLURMDBD_PORT" "$DB_PORT")
for p in "${ports[@]}"; do
    sb_port_open "$p" && sb_die "port $p on 127.0.0.1 is already in use"
done
if getent passwd "$TEST_USER" >/dev/null; then
    gecos="$(getent passwd "$TEST_USER" | cut -d: -f5)"
    home="$(getent passwd "$TEST_USER" | cut -d: -f6)"
    if [[ "$gecos" == faxflow-sandbox* && ! -d "$home" ]] &&
        ! pgrep -u "$TEST_USER" >/dev/null 2>&1; then
        sb_log "removing stale sandbox user $TEST_USER (home $home is gone)"
        userdel "$TEST_USER" || true
    else
        sb_die "user $TEST_USER already exists (another sandbox up?): set TEST_USER or run down.sh"
    fi
fi

t0=$SECONDS
# Fresh state every run (node DRAIN reasons persist in StateSaveLocation).
if [[ -d "$RUN" ]]; then
    find "$RUN" -mindepth 1 -maxdepth 1 -exec rm -rf {} +
fi
mkdir -p "$RUN"
chmod 0755 "$RUN"
touch "$RUN/.faxflow-sandbox"
SANDBOX_TAG="faxflow-sandbox-$(date +%s)-$$-$RANDOM"
SLURM_CONF="$RUN/etc/slurm.conf"
MUNGE_SOCKET="$RUN/munge/munge.socket.2"
export SLURM_CONF MUNGE_SOCKET  # SANDBOX_TAG is passed explicitly by sb_spawn

# The resolved configuration, for down.sh / ctl.sh (written before anything
# is started so that down.sh can clean up after a partial up).
{
    for v in RUN SANDBOX_TAG SLURM_CONF MUNGE_SOCKET SLURM_PORT_BASE SLURMCTLD_PORT SLURMD_PORT \
        SLURMDBD_PORT SSH_PORT DB_PORT SANDBOX_CPUS SANDBOX_MINJOBAGE TEST_USER WITH_DBD \
        SCHED_PARAMS SANDBOX_PYTHON; do
        printf '%s=%q\n' "$v" "${!v}"
    done
} >"$RUN/sandbox.conf"
: >"$RUN/started"

on_fail() {
    local rc=$?
    trap - ERR EXIT
    if [[ $rc -ne 0 ]]; then
        sb_log "up.sh FAILED (rc=$rc) after $((SECONDS - t0))s; logs in $RUN"
        if [[ "$CLEANUP_ON_FAIL" == 1 ]]; then
            sb_log "cleaning up (down.sh with KEEP_RUN=1)"
            KEEP_RUN=1 RUN="$RUN" "$SB_DIR/down.sh" || true
        fi
    fi
    exit $rc
}
trap on_fail EXIT

render() { # template output
    local s k
    s="$(<"$1")"
    for k in RUN MUNGE_SOCKET SLURMCTLD_PORT SLURMD_PORT SLURMDBD_PORT SSH_PORT DB_PORT DB_PASS \
        SCHED_PARAMS MINJOBAGE ACCOUNTING SLURMD_PARAMS NODE_HW TEST_USER SLURM_CONF; do
        s="${s//@$k@/${!k:-}}"
    done
    printf '%s\n' "$s" >"$2"
}

mkdir -p "$RUN"/{etc,munge,slurm/state,slurm/spool,slurm/log,ssh,home,remote}
chmod 0755 "$RUN"/{etc,munge,slurm,slurm/log,ssh,home}
chmod 0700 "$RUN/slurm/state" "$RUN/slurm/spool"

# ------------------------------------------------------------ munge
mungekey --create --keyfile="$RUN/munge/munge.key" --force >/dev/null
chown root:root "$RUN/munge/munge.key"
chmod 0400 "$RUN/munge/munge.key"
sb_start_daemon munged

# ------------------------------------------------------------ configs
read -r -a hw <<<"$(slurmd -C | head -n1)"
declare -A H=()
for kv in "${hw[@]}"; do H[${kv%%=*}]=${kv#*=}; done
REAL_CPUS=${H[CPUs]:-1}
if [[ "$SANDBOX_CPUS" == "$REAL_CPUS" ]]; then
    NODE_HW="CPUs=$REAL_CPUS Boards=${H[Boards]:-1} SocketsPerBoard=${H[SocketsPerBoard]:-1} CoresPerSocket=${H[CoresPerSocket]:-1} ThreadsPerCore=${H[ThreadsPerCore]:-1} RealMemory=${H[RealMemory]:-1000}"
    SLURMD_PARAMS=""
else
    # Oversubscribe on purpose (packing trivial jobs): needs config_overrides,
    # otherwise the node is drained for "Low socket*core*thread count".
    NODE_HW="CPUs=$SANDBOX_CPUS RealMemory=${H[RealMemory]:-1000}"
    SLURMD_PARAMS="SlurmdParameters=config_overrides"
fi
MINJOBAGE=$SANDBOX_MINJOBAGE
DB_PASS="$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"
if [[ "$WITH_DBD" == 1 ]]; then
    # Connections to slurmdbd ignore AuthInfo: AccountingStoragePass carries the socket.
    ACCOUNTING="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$SLURMDBD_PORT
AccountingStoragePass=$MUNGE_SOCKET"
else
    ACCOUNTING="AccountingStorageType=accounting_storage/none"
fi
render "$SB_DIR/slurm.conf.in" "$SLURM_CONF"
chmod 0644 "$SLURM_CONF"
if [[ "$WITH_DBD" == 1 ]]; then
    render "$SB_DIR/slurmdbd.conf.in" "$RUN/etc/slurmdbd.conf"
    chmod 0600 "$RUN/etc/slurmdbd.conf"
fi

# ------------------------------------------------------------ MariaDB + slurmdbd
if [[ "$WITH_DBD" == 1 ]]; then
    mkdir -p "$RUN/mysql/data"
    chown -R mysql:mysql "$RUN/mysql"
    chmod 0750 "$RUN/mysql"
    mariadb-install-db --no-defaults --user=mysql --datadir="$RUN/mysql/data" \
        --auth-root-authentication-method=socket --skip-test-db --skip-name-resolve \
        >"$RUN/mysql/install-db.log" 2>&1 || { tail -n 30 "$RUN/mysql/install-db.log" >&2; exit 1; }
    sb_start_daemon mariadbd
    mariadb --no-defaults --protocol=socket --socket="$RUN/mysql/mysqld.sock" -uroot <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
FLUSH PRIVILEGES;
SQL
    sb_start_daemon slurmdbd
fi

# ------------------------------------------------------------ slurmctld + slurmd
sb_start_daemon slurmctld
sb_start_daemon slurmd

if [[ "$WARMUP" == 1 ]]; then
    # The first job after slurmctld starts waits ~2.8 s; pay it here.
    wid="$(sbatch --parsable -J sandbox-warmup --chdir="$RUN/slurm/log" -o /dev/null --wrap true)"
    wid="${wid%%;*}"
    warm_done() { [[ "$(squeue -h -t all -j "$wid" -o %T 2>/dev/null)" == COMPLETED ]]; }
    sb_wait_until 30 "warm-up job $wid" warm_done || { sb_tail_log slurmctld; sb_tail_log slurmd; exit 1; }
    sb_log "warm-up job $wid COMPLETED"
fi

# ------------------------------------------------------------ test user
HOME_DIR="$RUN/home/$TEST_USER"
useradd -M -d "$HOME_DIR" -s /bin/bash -c "faxflow-sandbox $SANDBOX_TAG" -U "$TEST_USER"
usermod -p '*' "$TEST_USER" # '!' (locked) makes sshd refuse even key logins with UsePAM no
TEST_UID="$(id -u "$TEST_USER")"
printf 'TEST_UID=%q\n' "$TEST_UID" >>"$RUN/sandbox.conf"
mkdir -p "$HOME_DIR/.ssh"
chown "$TEST_USER:$TEST_USER" "$HOME_DIR" "$HOME_DIR/.ssh" "$RUN/remote"
chmod 0755 "$HOME_DIR" "$RUN/remote"
chmod 0700 "$HOME_DIR/.ssh"

# Make the project interpreter reachable for the test user.
SANDBOX_PYTHON_OK=0
: >"$RUN/acl_grants"
if [[ -x "$SANDBOX_PYTHON" ]]; then
    targets=("$(readlink -f "$SANDBOX_PYTHON")" "$(dirname "$SANDBOX_PYTHON")")
    for t in "${targets[@]}"; do
        d="$(dirname "$t")"
        chain=()
        while [[ "$d" != / ]]; do chain=("$d" "${chain[@]}"); d="$(dirname "$d")"; done
        for d in "${chain[@]}"; do
            if ! runuser -u "$TEST_USER" -- test -x "$d" 2>/dev/null; then
                if [[ "$GRANT_PYTHON" == 1 ]]; then
                    had_acl=0
                    [[ -n "$(getfacl -c --skip-base "$d" 2>/dev/null)" ]] && had_acl=1
                    setfacl -m "u:$TEST_USER:x" "$d"
                    printf '%s\t%s\n' "$had_acl" "$d" >>"$RUN/acl_grants"
                    sb_log "granted traverse-only ACL u:$TEST_USER:x on $d (removed by down.sh)"
                else
                    sb_log "warning: $TEST_USER cannot traverse $d (GRANT_PYTHON=0)"
                fi
            fi
        done
    done
    if runuser -u "$TEST_USER" -- env HOME="$HOME_DIR" "$SANDBOX_PYTHON" -c 'import faxflow' \
        >"$RUN/python-check.log" 2>&1; then
        SANDBOX_PYTHON_OK=1
    else
        sb_log "warning: $TEST_USER cannot run '$SANDBOX_PYTHON -c \"import faxflow\"' (see $RUN/python-check.log)"
    fi
fi

# Test user must be able to read slurm.conf (e.g. RUN under a 0700 parent).
runuser -u "$TEST_USER" -- test -r "$SLURM_CONF" ||
    sb_die "$TEST_USER cannot read $SLURM_CONF: every parent of RUN must be world-traversable"

# ------------------------------------------------------------ ssh keys
ssh-keygen -q -t ed25519 -N '' -C "faxflow-sandbox-host" -f "$RUN/ssh/ssh_host_ed25519_key"
ssh-keygen -q -t ed25519 -N '' -C "faxflow-sandbox-client" -f "$RUN/ssh/id_ed25519"
chmod 0600 "$RUN/ssh/ssh_host_ed25519_key" "$RUN/ssh/id_ed25519"
install -m 0600 -o "$TEST_USER" -g "$TEST_USER" "$RUN/ssh/id_ed25519.pub" "$HOME_DIR/.ssh/authorized_keys"
HOST_KEY_PUB="$(cut -d' ' -f1,2 "$RUN/ssh/ssh_host_ed25519_key.pub")"
{
    echo "[127.0.0.1]:$SSH_PORT $HOST_KEY_PUB"
    echo "[localhost]:$SSH_PORT $HOST_KEY_PUB"
} >"$RUN/ssh/known_hosts"
chmod 0644 "$RUN/ssh/known_hosts"
render "$SB_DIR/sshd_config.in" "$RUN/etc/sshd_config"
chmod 0644 "$RUN/etc/sshd_config"
sb_start_daemon sshd

# ------------------------------------------------------------ env.sh
{
    echo "# faxflow sandbox environment; source me: . $RUN/env.sh"
    # NB: SANDBOX_TAG is deliberately NOT exported here (down.sh kills whatever carries it).
    for kv in \
        "SANDBOX_RUN=$RUN" \
        "SLURM_CONF=$SLURM_CONF" \
        "SANDBOX_SSH_HOST=127.0.0.1" \
        "SANDBOX_SSH_PORT=$SSH_PORT" \
        "SANDBOX_SSH_USER=$TEST_USER" \
        "SANDBOX_SSH_KEY=$RUN/ssh/id_ed25519" \
        "SANDBOX_SSH_KNOWN_HOSTS=$RUN/ssh/known_hosts" \
        "SANDBOX_SSH_HOST_KEY_PUB=$HOST_KEY_PUB" \
        "SANDBOX_SSH_HOST_KEY_PUB_FILE=$RUN/ssh/ssh_host_ed25519_key.pub" \
        "SANDBOX_TEST_UID=$TEST_UID" \
        "SANDBOX_HOME=$HOME_DIR" \
        "SANDBOX_REMOTE_ROOT=$RUN/remote" \
        "SANDBOX_STATE_DIR=$RUN/slurm/state" \
        "SANDBOX_SPOOL_DIR=$RUN/slurm/spool" \
        "SANDBOX_LOG_DIR=$RUN/slurm/log" \
        "SANDBOX_MUNGE_SOCKET=$MUNGE_SOCKET" \
        "SANDBOX_SLURMCTLD_PORT=$SLURMCTLD_PORT" \
        "SANDBOX_SLURMD_PORT=$SLURMD_PORT" \
        "SANDBOX_SLURMDBD_PORT=$SLURMDBD_PORT" \
        "SANDBOX_DB_PORT=$DB_PORT" \
        "SANDBOX_WITH_DBD=$WITH_DBD" \
        "SANDBOX_CPUS=$SANDBOX_CPUS" \
        "SANDBOX_MINJOBAGE=$SANDBOX_MINJOBAGE" \
        "SANDBOX_PARTITION=debug" \
        "SANDBOX_PYTHON=$SANDBOX_PYTHON" \
        "SANDBOX_PYTHON_OK=$SANDBOX_PYTHON_OK"; do
        printf 'export %s=%q\n' "${kv%%=*}" "${kv#*=}"
    done
} >"$RUN/env.sh"
chmod 0644 "$RUN/env.sh"

# record daemon pids (for "down leaves nothing running" checks)
while read -r name; do
    printf '%s %s\n' "$name" "$(sb_daemon_pid "$name" || echo -)"
done <"$RUN/started" >"$RUN/pids"

sb_log "READY in $((SECONDS - t0))s: RUN=$RUN ssh $TEST_USER@127.0.0.1:$SSH_PORT slurmctld :$SLURMCTLD_PORT dbd=$WITH_DBD"
echo "$RUN/env.sh"
