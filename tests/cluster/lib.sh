# shellcheck shell=bash
# Shared functions for up.sh / down.sh / ctl.sh / restart.sh of the faxflow
# real-cluster sandbox. Sourced, not executed.
#
# Identity rule: a process is "ours" only if its environ carries
# SANDBOX_TAG=<tag of this RUN>, or its cmdline or cwd is inside $RUN, or it
# runs as the sandbox test user. Nothing is ever killed by name.

SB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SB_PROJECT_ROOT="$(cd "$SB_DIR/../.." && pwd)"

sb_log() { printf '[sandbox %s] %s\n' "$(date +%H:%M:%S.%N | cut -c1-12)" "$*" >&2; }
sb_die() { sb_log "ERROR: $*"; exit 1; }

# Resolve RUN to an absolute path (it may not exist yet).
sb_resolve_run() {
    RUN="${RUN:-$SB_DIR/run}"
    case "$RUN" in
        /*) ;;
        *) RUN="$PWD/$RUN" ;;
    esac
    RUN="${RUN%/}"
    [[ -n "$RUN" && "$RUN" != / ]] || sb_die "refusing RUN=/"
    export RUN
}

# Load the resolved configuration written by up.sh. Returns 1 if absent.
sb_load_conf() {
    [[ -f "$RUN/sandbox.conf" ]] || return 1
    # shellcheck disable=SC1091
    . "$RUN/sandbox.conf"
    export SLURM_CONF
}

# ---------------------------------------------------------------- processes

# Field N (3=state, 4=ppid, 22=starttime) of /proc/PID/stat; comm may contain
# spaces and parentheses, so split after the last ") ". Builtins only (fast).
sb_stat_field() { # pid fieldno
    local s
    { read -r s <"/proc/$1/stat"; } 2>/dev/null || return 1
    s="${s##*) }"
    local -a f
    read -r -a f <<<"$s"
    echo "${f[$(($2 - 3))]}"
}

# Alive = exists and is not a zombie (PID 1 reaps orphans late here).
sb_alive() {
    local st
    [[ -n "${1:-}" && -d "/proc/$1" ]] || return 1
    st="$(sb_stat_field "$1" 3)" || return 1
    [[ "$st" != Z && "$st" != X ]]
}

sb_ppid() { sb_stat_field "$1" 4; }

# Is this pid ours (see identity rule above)?
sb_is_ours() {
    local pid=$1 cwd line e
    [[ -d "/proc/$pid" ]] || return 1
    local -a arr=()
    if [[ -n "${SANDBOX_TAG:-}" ]]; then
        { mapfile -d '' arr <"/proc/$pid/environ"; } 2>/dev/null || arr=()
        for e in "${arr[@]}"; do
            [[ "$e" == "SANDBOX_TAG=$SANDBOX_TAG" ]] && return 0
        done
    fi
    { mapfile -d '' arr <"/proc/$pid/cmdline"; } 2>/dev/null || arr=()
    for e in "${arr[@]}"; do
        [[ "$e" == "$RUN" || "$e" == *"$RUN/"* ]] && return 0
    done
    cwd="$(readlink "/proc/$pid/cwd" 2>/dev/null || true)"
    if [[ "$cwd" == "$RUN" || "$cwd" == "$RUN"/* ]]; then
        return 0
    fi
    if [[ -n "${TEST_UID:-}" ]]; then
        while read -r line; do
            if [[ "$line" == Uid:* ]]; then
                read -r _ e _ <<<"$line"
                [[ "$e" == "$TEST_UID" ]] && return 0
                break
            fi
        done <"/proc/$pid/status" 2>/dev/null
    fi
    return 1
}

# Has a non-empty cmdline (kernel threads do not).
sb_has_cmdline() {
    local -a arr=()
    { mapfile -d '' -n 1 arr <"/proc/$1/cmdline"; } 2>/dev/null || return 1
    [[ ${#arr[@]} -gt 0 ]]
}

# Our own ancestors (never signalled).
sb_ancestors() {
    local p=$BASHPID
    while [[ -n "$p" && "$p" != 0 ]]; do
        echo "$p"
        p="$(sb_ppid "$p" 2>/dev/null || true)"
        [[ "$p" == 1 ]] && { echo 1; break; }
    done
}

# Print "pid starttime" for every process that is ours plus all descendants.
sb_snapshot() {
    local -A parent=() ours=() anc=()
    local d pid pp
    for pid in $(sb_ancestors); do anc[$pid]=1; done
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        pp="$(sb_ppid "$pid" 2>/dev/null)" || continue
        parent[$pid]=$pp
        [[ -n "${anc[$pid]:-}" || "$pid" == 1 ]] && continue
        # kernel threads have an empty cmdline
        sb_has_cmdline "$pid" || continue
        sb_is_ours "$pid" && ours[$pid]=1
    done
    # add descendants (fixed point)
    local changed=1
    while [[ $changed == 1 ]]; do
        changed=0
        for pid in "${!parent[@]}"; do
            [[ -n "${ours[$pid]:-}" || -n "${anc[$pid]:-}" ]] && continue
            pp=${parent[$pid]}
            if [[ -n "${ours[$pp]:-}" ]]; then ours[$pid]=1; changed=1; fi
        done
    done
    for pid in "${!ours[@]}"; do
        echo "$pid $(sb_stat_field "$pid" 22 2>/dev/null || echo 0)"
    done
}

# Descendants of one pid (snapshot), one per line with starttime.
sb_descendants() {
    local root=$1 d pid pp
    local -A parent=() sel=()
    sel[$root]=1
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        pp="$(sb_ppid "$pid" 2>/dev/null)" || continue
        parent[$pid]=$pp
    done
    local changed=1
    while [[ $changed == 1 ]]; do
        changed=0
        for pid in "${!parent[@]}"; do
            [[ -n "${sel[$pid]:-}" ]] && continue
            if [[ -n "${sel[${parent[$pid]}]:-}" ]]; then sel[$pid]=1; changed=1; fi
        done
    done
    unset 'sel[$root]'
    for pid in "${!sel[@]}"; do
        echo "$pid $(sb_stat_field "$pid" 22 2>/dev/null || echo 0)"
    done
}

# Signal a list of "pid starttime" lines, only if the pid still has that start
# time (no pid-reuse accidents). TERM, wait, then KILL.
sb_kill_list() { # term_wait_seconds  <<< lines
    local wait_s=${1:-3} pid st deadline
    local -a pids=()
    while read -r pid st; do
        [[ -n "$pid" ]] || continue
        [[ "$(sb_stat_field "$pid" 22 2>/dev/null)" == "$st" ]] || continue
        pids+=("$pid")
    done
    [[ ${#pids[@]} -gt 0 ]] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$((SECONDS + wait_s))
    while ((SECONDS < deadline)); do
        local any=0
        for pid in "${pids[@]}"; do sb_alive "$pid" && { any=1; break; }; done
        [[ $any == 0 ]] && return 0
        sleep 0.1
    done
    for pid in "${pids[@]}"; do sb_alive "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
    deadline=$((SECONDS + 5))
    while ((SECONDS < deadline)); do
        local any=0
        for pid in "${pids[@]}"; do sb_alive "$pid" && { any=1; break; }; done
        [[ $any == 0 ]] && return 0
        sleep 0.1
    done
    sb_log "warning: still alive after SIGKILL: ${pids[*]}"
}

# ---------------------------------------------------------------- daemons

sb_pidfile() {
    case "$1" in
        munged) echo "$RUN/munge/munged.pid" ;;
        mariadbd) echo "$RUN/mysql/mysqld.pid" ;;
        slurmdbd) echo "$RUN/slurm/slurmdbd.pid" ;;
        slurmctld) echo "$RUN/slurm/slurmctld.pid" ;;
        slurmd) echo "$RUN/slurm/slurmd.pid" ;;
        sshd) echo "$RUN/ssh/sshd.pid" ;;
        *) sb_die "unknown daemon '$1'" ;;
    esac
}

sb_logfile() {
    case "$1" in
        munged) echo "$RUN/munge/munged.log" ;;
        mariadbd) echo "$RUN/mysql/mysqld.log" ;;
        slurmdbd) echo "$RUN/slurm/log/slurmdbd.log" ;;
        slurmctld) echo "$RUN/slurm/log/slurmctld.log" ;;
        slurmd) echo "$RUN/slurm/log/slurmd.log" ;;
        sshd) echo "$RUN/ssh/sshd.log" ;;
    esac
}

sb_daemon_pid() { # prints the pid if the pidfile names a live process of ours
    local pf pid
    pf="$(sb_pidfile "$1")"
    [[ -f "$pf" ]] || return 1
    pid="$(tr -dc '0-9' <"$pf" | head -c 12)"
    [[ -n "$pid" ]] || return 1
    sb_alive "$pid" || return 1
    sb_is_ours "$pid" || { sb_log "pid $pid in $pf is not ours; ignoring"; return 1; }
    echo "$pid"
}

sb_tail_log() {
    local f
    f="$(sb_logfile "$1")"
    [[ -f "$f" ]] && { sb_log "--- last lines of $f"; tail -n 25 "$f" >&2; }
    # stdout/stderr of the spawned command (e.g. errors before the log is opened)
    if [[ -n "${SB_LAST_OUT:-}" && "$SB_LAST_OUT" != "$f" && -s "$SB_LAST_OUT" ]]; then
        sb_log "--- last lines of $SB_LAST_OUT"
        tail -n 15 "$SB_LAST_OUT" >&2
    fi
    return 0
}

# Run a command with our tag/env, detached, cwd inside RUN.
sb_spawn() { # logfile cmd...
    local log=$1
    shift
    (cd "$RUN" && exec setsid env SANDBOX_TAG="$SANDBOX_TAG" SLURM_CONF="$SLURM_CONF" "$@" \
        </dev/null >>"$log" 2>&1) &
    SB_LAST_BG=$!
    SB_LAST_OUT=$log
    SB_WATCH_PID=$SB_LAST_BG
}

sb_wait_until() { # timeout_s description cmd...
    local t=$1 what=$2
    shift 2
    local deadline=$((SECONDS + t)) rc
    while ! "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { sb_log "timeout (${t}s) waiting for $what"; return 1; }
        # fail fast if the process we just spawned has exited non-zero
        # (daemons that fork exit 0 in the parent once they are detached)
        if [[ -n "${SB_WATCH_PID:-}" ]] && ! kill -0 "$SB_WATCH_PID" 2>/dev/null; then
            rc=0
            wait "$SB_WATCH_PID" 2>/dev/null || rc=$?
            SB_WATCH_PID=""
            if [[ $rc -ne 0 ]]; then sb_log "$what: process exited with rc=$rc"; return 1; fi
        fi
        sleep 0.1
    done
}

sb_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_sb_munge_ok() { munge -n --socket="$MUNGE_SOCKET" | unmunge --socket="$MUNGE_SOCKET"; }
_sb_mysql_ok() { mariadb-admin --no-defaults --protocol=socket --socket="$RUN/mysql/mysqld.sock" -uroot ping; }
_sb_dbd_ok() { timeout 5 sacctmgr -n -P list cluster format=cluster; }
_sb_ctld_ok() { timeout 5 scontrol ping | grep -q 'is UP'; }
_sb_node_idle() { [[ "$(timeout 5 sinfo -h -n localhost -o %t)" == idle ]]; }
_sb_node_up() {
    local st
    st="$(timeout 5 sinfo -h -n localhost -o %t)" || return 1
    [[ -n "$st" && "$st" != unk* && "$st" != down* && "$st" != drain* && "$st" != inval* && "$st" != *"*" ]]
}

sb_start_daemon() {
    local name=$1 log
    log="$(sb_logfile "$name")"
    if sb_daemon_pid "$name" >/dev/null; then
        sb_log "$name already running"
        return 0
    fi
    case "$name" in
        munged)
            sb_spawn "$log" munged --key-file="$RUN/munge/munge.key" --socket="$MUNGE_SOCKET" \
                --pid-file="$RUN/munge/munged.pid" --log-file="$log" --seed-file="$RUN/munge/munged.seed"
            sb_wait_until 15 "munged" _sb_munge_ok || { sb_tail_log munged; return 1; }
            ;;
        mariadbd)
            sb_spawn "$RUN/mysql/mysqld.out" mariadbd --no-defaults --user=mysql \
                --datadir="$RUN/mysql/data" --socket="$RUN/mysql/mysqld.sock" \
                --pid-file="$RUN/mysql/mysqld.pid" --log-error="$log" \
                --port="$DB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
                --skip-log-bin --innodb-buffer-pool-size=64M --innodb-log-file-size=16M \
                --innodb-flush-log-at-trx-commit=2 --innodb-use-native-aio=0 \
                --max-connections=200
            sb_wait_until 60 "mariadbd" _sb_mysql_ok || { sb_tail_log mariadbd; return 1; }
            ;;
        slurmdbd)
            sb_spawn "$RUN/slurm/log/slurmdbd.out" slurmdbd
            sb_wait_until 30 "slurmdbd" _sb_dbd_ok || { sb_tail_log slurmdbd; return 1; }
            ;;
        slurmctld)
            sb_spawn "$RUN/slurm/log/slurmctld.out" slurmctld
            sb_wait_until 30 "slurmctld" _sb_ctld_ok || { sb_tail_log slurmctld; return 1; }
            if sb_daemon_pid slurmd >/dev/null 2>&1; then
                # After a restart the node stays UNKNOWN for ~4 s until slurmd
                # re-registers; reconfigure makes it re-register at once.
                timeout 10 scontrol reconfigure >/dev/null 2>&1 || true
                sb_wait_until 30 "node to re-register" _sb_node_up || { sb_tail_log slurmctld; return 1; }
            fi
            ;;
        slurmd)
            sb_spawn "$RUN/slurm/log/slurmd.out" slurmd -N localhost
            sb_wait_until 30 "node idle" _sb_node_idle || { sb_tail_log slurmd; sb_tail_log slurmctld; return 1; }
            ;;
        sshd)
            mkdir -p /run/sshd && chmod 0755 /run/sshd
            /usr/sbin/sshd -t -f "$RUN/etc/sshd_config" || sb_die "sshd -t rejected $RUN/etc/sshd_config"
            sb_spawn "$RUN/ssh/sshd.out" /usr/sbin/sshd -f "$RUN/etc/sshd_config" -E "$log"
            sb_wait_until 15 "sshd" sb_port_open "$SSH_PORT" || { sb_tail_log sshd; return 1; }
            ;;
        *) sb_die "unknown daemon '$name'" ;;
    esac
    SB_WATCH_PID=""
    # pid file may appear a moment after readiness
    sb_wait_until 5 "$name pid file" sb_daemon_pid "$name" || { sb_tail_log "$name"; return 1; }
    if ! grep -qx "$name" "$RUN/started" 2>/dev/null; then echo "$name" >>"$RUN/started"; fi
    sb_log "$name up (pid $(sb_daemon_pid "$name"))"
}

# Stop one daemon by its pid file. signal=TERM (graceful, SIGKILL after 5 s)
# or KILL (hard). With_tree=1 also kills the daemon's descendants (sshd: the
# per-connection processes, so existing sessions are dropped).
sb_stop_daemon() { # name [TERM|KILL] [with_tree]
    local name=$1 sig=${2:-TERM} tree=${3:-0} pid st desc=""
    pid="$(sb_daemon_pid "$name")" || { sb_log "$name not running"; return 0; }
    st="$(sb_stat_field "$pid" 22)"
    [[ "$tree" == 1 ]] && desc="$(sb_descendants "$pid")"
    if [[ "$sig" == KILL ]]; then
        kill -KILL "$pid" 2>/dev/null || true
    fi
    printf '%s %s\n' "$pid" "$st" | sb_kill_list 5
    if [[ -n "$desc" ]]; then
        sb_kill_list 2 <<<"$desc"
    fi
    sb_log "$name stopped (pid $pid, SIG$sig)"
}
