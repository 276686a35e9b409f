#!/usr/bin/env bash
# restart.sh [--hard] slurmctld|sshd|slurmd  -- restart one sandbox daemon
# (--hard: SIGKILL instead of SIGTERM). Env: RUN. See ctl.sh.
set -euo pipefail
action=restart
if [[ "${1:-}" == --hard ]]; then action=hard-restart; shift; fi
exec "$(dirname "${BASH_SOURCE[0]}")/ctl.sh" "$action" "${1:?usage: restart.sh [--hard] DAEMON}"
