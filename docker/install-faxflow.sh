#!/usr/bin/env bash
# Install faxflow (+ Airflow extras) with the project lock (constraints.txt).
#
#   docker/install-faxflow.sh                  # into the current Python (the Docker image)
#   docker/install-faxflow.sh --venv DIR       # into DIR/bin/python (created if missing)
#   docker/install-faxflow.sh --dry-run        # check the lock covers every direct dependency; print the command
#
# `make test` runs the --dry-run mode, so the image recipe cannot drift from the lock unnoticed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
project="${FAXFLOW_SOURCE:-$(dirname "$here")}"
python="${PYTHON:-python3}"
dry_run=0
editable=""
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --venv) shift; [ -x "$1/bin/python" ] || "$python" -m venv "$1"; python="$1/bin/python" ;;
        --editable) editable="-e" ;;
        *) echo "unknown option: $1" >&2; exit 2 ;;
    esac
    shift
done

lock="$project/constraints.txt"
[ -f "$lock" ] || { echo "missing lock file $lock" >&2; exit 1; }
[ -f "$project/pyproject.toml" ] || { echo "missing $project/pyproject.toml" >&2; exit 1; }

# Every direct dependency (pyproject [project.dependencies] + the airflow extra) must be pinned in the lock.
missing="$("$python" - "$project/pyproject.toml" "$lock" <<'PY'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["airflow"]
pinned = {re.split(r"==", line, 1)[0].strip().lower().replace("_", "-")
          for line in open(sys.argv[2]) if "==" in line and not line.startswith("#")}
names = {re.split(r"[<>=!~\[; ]", dep, 1)[0].lower().replace("_", "-") for dep in wanted}
print(" ".join(sorted(names - pinned)))
PY
)"
if [ -n "$missing" ]; then
    echo "constraints.txt does not pin: $missing" >&2
    exit 1
fi

cmd=("$python" -m pip install --no-cache-dir --disable-pip-version-check -c "$lock" $editable "$project[airflow]")
if [ "$dry_run" = 1 ]; then
    echo "lock ok; would run: ${cmd[*]}"
    exit 0
fi
"${cmd[@]}"
"$python" -c "import faxflow, airflow.sdk, airflow.providers.ssh; print('faxflow', faxflow.__version__, 'installed')"
