#!/usr/bin/env bash
# Control one daemon of a running sandbox:
#   ctl.sh start|stop|kill|restart|hard-restart|status  slurmctld|slurmd|slurmdbd|sshd|munged|mariadbd
# stop = SIGTERM (SIGKILL after 5 s); kill = SIGKILL. For sshd, stop/kill also
# kill the per-connection sshd processes, so existing connections are dropped.
# restart waits until the daemon is ready again (slurmctld: scontrol ping UP;
# slurmd: node idle; sshd: port accepts). Env: RUN.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
[[ $EUID -eq 0 ]] || sb_die "ctl.sh must run as root"
[[ $# -eq 2 ]] || sb_die "usage: ctl.sh start|stop|kill|restart|hard-restart|status DAEMON"
action=$1 name=$2
sb_resolve_run
[[ -e "$RUN/started" ]] || sb_die "no sandbox up in $RUN"
sb_load_conf || sb_die "$RUN/sandbox.conf missing"
sb_pidfile "$name" >/dev/null
tree=0
[[ "$name" == sshd ]] && tree=1
case "$action" in
    start) sb_start_daemon "$name" ;;
    stop) sb_stop_daemon "$name" TERM "$tree" ;;
    kill) sb_stop_daemon "$name" KILL "$tree" ;;
    restart) sb_stop_daemon "$name" TERM "$tree" && sb_start_daemon "$name" ;;
    hard-restart) sb_stop_daemon "$name" KILL "$tree" && sb_start_daemon "$name" ;;
    status)
        if pid="$(sb_daemon_pid "$name")"; then echo "$name running pid $pid"; else echo "$name stopped"; exit 3; fi
        ;;
    *) sb_die "unknown action '$action'" ;;
esac
