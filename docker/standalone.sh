#!/usr/bin/env bash
# `make up`: one-machine Airflow (api-server, scheduler, dag-processor, triggerer) for this checkout.
#   - works with nothing activated: the venv's bin comes first in PATH (standalone starts `airflow` by name)
#   - AIRFLOW_HOME defaults to .airflow/home (SQLite, LocalExecutor, fine for development only)
#   - migrates the DB and creates/resizes every pool named in configs/*.yaml with --include-deferred
#   - starts `airflow standalone` in its own process group; stop it with: kill -TERM -- -$(cat .airflow/standalone.pid)
# Login: http://localhost:8080, user `admin`; every start writes the password as the first line of
# .airflow/standalone.log ("Password for user 'admin'"); it is kept in
# $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated and stays the same across restarts.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
bin="$(cd "$(dirname "$python")" && pwd)"
export PATH="$bin:$PATH"
state="${FAXFLOW_UP_DIR:-$root/.airflow}"   # log + pid file (tests point it elsewhere)
home="${AIRFLOW_HOME:-$root/.airflow/home}"
eval "$("$python" -m faxflow.airflow.home env --home "$home" --project "$root")"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
"$python" -m faxflow.airflow.home setup --home "$home" --project "$root"
mkdir -p "$state"
log="$state/standalone.log"
"$python" -m faxflow.airflow.home password --home "$home" > "$log"
if [ "${FOREGROUND:-0}" = 1 ]; then
    cat "$log"
    exec airflow standalone
fi
setsid nohup airflow standalone >> "$log" 2>&1 < /dev/null &
echo $! > "$state/standalone.pid"
echo "airflow standalone starting (pid $(cat "$state/standalone.pid"), log $log)"
echo "UI: http://localhost:${AIRFLOW__API__PORT:-8080}  user: admin  password: first line of $log"
