#!/usr/bin/env bash
# `make up`: one-machine Airflow (api-server, scheduler, dag-processor, triggerer) for this checkout.
#   - AIRFLOW_HOME defaults to .airflow/home (SQLite, LocalExecutor, fine for development only)
#   - migrates the DB and creates every pool named in configs/*.yaml with --include-deferred
#   - starts `airflow standalone` in its own process group; stop it with: kill -TERM -- -$(cat .airflow/standalone.pid)
# Login: http://localhost:8080, user `admin`; the password is printed in .airflow/standalone.log
# ("Password for user 'admin'") and stored in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
home="${AIRFLOW_HOME:-$root/.airflow/home}"
eval "$("$python" -m faxflow.airflow.home env --home "$home" --project "$root")"
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
"$python" -m faxflow.airflow.home setup --home "$home" --project "$root"
# The same pools through the CLI (idempotent), so they are visible in `airflow pools list` exactly as documented.
"$python" -m faxflow.airflow.home pools --project "$root" | while read -r name size; do
    "$(dirname "$python")/airflow" pools set "$name" "$size" "faxflow: jobs in flight" --include-deferred >/dev/null
done
mkdir -p "$root/.airflow"
if [ "${FOREGROUND:-0}" = 1 ]; then
    exec "$(dirname "$python")/airflow" standalone
fi
setsid nohup "$(dirname "$python")/airflow" standalone > "$root/.airflow/standalone.log" 2>&1 &
echo $! > "$root/.airflow/standalone.pid"
echo "airflow standalone starting (pid $(cat "$root/.airflow/standalone.pid"), log .airflow/standalone.log)"
echo "UI: http://localhost:8080  user: admin  password: see $home/simple_auth_manager_passwords.json.generated"
