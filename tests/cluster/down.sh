#!/usr/bin/env bash
# Stop the faxflow real-cluster sandbox in $RUN and remove all its traces.
# Safe after a failed or partial up.sh, and when nothing is up (no-op).
#
# Env: RUN (default tests/cluster/run), KEEP_RUN=1 keeps $RUN (logs) but
#      marks it as down so up.sh may reuse it.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $EUID -eq 0 ]] || sb_die "down.sh must run as root"
sb_resolve_run
KEEP_RUN="${KEEP_RUN:-0}"

if [[ ! -e "$RUN/.faxflow-sandbox" ]]; then
    sb_log "no sandbox in $RUN; nothing to do"
    exit 0
fi
t0=$SECONDS
sb_load_conf || sb_log "warning: $RUN/sandbox.conf missing; cleaning what can be found"
SANDBOX_TAG="${SANDBOX_TAG:-}"
TEST_USER="${TEST_USER:-}"
TEST_UID="${TEST_UID:-}"
# The user is ours only if up.sh created it (marker in GECOS) with its home in RUN.
user_ours=0
if [[ -n "$TEST_USER" ]] && getent passwd "$TEST_USER" >/dev/null; then
    IFS=: read -r _ _ uid _ gecos home _ <<<"$(getent passwd "$TEST_USER")"
    if [[ "$gecos" == "faxflow-sandbox ${SANDBOX_TAG}" && "$home" == "$RUN"/* ]]; then
        user_ours=1
        TEST_UID=$uid
    else
        TEST_UID=""
    fi
fi
# (SANDBOX_TAG and TEST_UID are shell variables, not exported)

# 1. cancel all jobs while slurmctld still answers
if [[ -f "${SLURM_CONF:-/nonexistent}" ]] && sb_daemon_pid slurmctld >/dev/null; then
    timeout 10 scancel --partition=debug 2>/dev/null || true
    queue_empty() { [[ -z "$(timeout 5 squeue -h -o %i 2>/dev/null)" ]]; }
    sb_wait_until 12 "queue to drain" queue_empty || sb_log "queue not empty; sweeping anyway"
fi

# 2. snapshot the tree of everything ours before any signal (orphaned
#    slurmstepd and job processes get re-parented once slurmd dies).
snap1="$(sb_snapshot)"

# 3. daemons in reverse start order, by pid file
if [[ -f "$RUN/started" ]]; then
    mapfile -t started <"$RUN/started"
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
        name="${started[$i]}"
        [[ -n "$name" ]] || continue
        if [[ "$name" == sshd ]]; then
            sb_stop_daemon sshd TERM 1 || true
        else
            sb_stop_daemon "$name" TERM 0 || true
        fi
    done
fi
# daemons that may have started without being recorded (partial up)
for name in sshd slurmd slurmctld slurmdbd mariadbd munged; do
    if sb_daemon_pid "$name" >/dev/null 2>&1; then sb_stop_daemon "$name" TERM 0 || true; fi
done

# 4. sweep: everything from the first snapshot plus whatever is ours now.
#    slurmstepd ignores SIGTERM: sb_kill_list escalates to SIGKILL.
snap2="$(sb_snapshot)"
left="$(printf '%s\n%s\n' "$snap1" "$snap2" | awk 'NF==2' | sort -u)"
if [[ -n "$left" ]]; then
    n=0
    while read -r pid st; do
        [[ "$(sb_stat_field "$pid" 22 2>/dev/null)" == "$st" ]] && sb_alive "$pid" && n=$((n + 1))
    done <<<"$left"
    if ((n > 0)); then
        sb_log "sweeping $n leftover process(es)"
        sb_kill_list 1 <<<"$left"
    fi
fi

# 5. remove ACL grants, then the test user (retry while zombies linger)
if [[ -s "$RUN/acl_grants" && -n "$TEST_USER" ]]; then
    while IFS=$'\t' read -r had_acl d; do
        [[ -d "$d" ]] || continue
        setfacl -x "u:$TEST_USER" "$d" 2>/dev/null || true
        if [[ "$had_acl" == 0 ]] && ! getfacl -c --skip-base "$d" 2>/dev/null | grep -q '^user:[^:]'; then
            setfacl -b "$d" 2>/dev/null || true
        fi
    done <"$RUN/acl_grants"
fi
if [[ $user_ours == 1 ]]; then
    deadline=$((SECONDS + 20))
    until userdel "$TEST_USER" 2>"$RUN/userdel.err"; do
        if ((SECONDS >= deadline)); then
            sb_log "userdel kept failing ($(cat "$RUN/userdel.err")); forcing"
            userdel -f "$TEST_USER" || sb_log "warning: could not delete user $TEST_USER"
            break
        fi
        # a process of the user still exists: kill live ones, wait for zombies
        more="$(sb_snapshot)"
        [[ -n "$more" ]] && sb_kill_list 2 <<<"$more"
        sleep 0.2
    done
    getent group "$TEST_USER" >/dev/null && groupdel "$TEST_USER" 2>/dev/null || true
fi

# 6. the run directory
rm -f "$RUN/started"
if [[ "$KEEP_RUN" == 1 ]]; then
    sb_log "down in $((SECONDS - t0))s; kept $RUN (KEEP_RUN=1)"
else
    rm -rf "$RUN"
    sb_log "down in $((SECONDS - t0))s; removed $RUN"
fi
