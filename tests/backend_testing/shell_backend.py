"""The "shell" backend: a group's job is ``faxflow job`` started by ``sh`` as a plain child process.

It shows what adding a scheduler takes: this one module plus an entry point in the ``faxflow.backends``
group. It reuses the local backend's files (outputs, logs, exit and heartbeat files, so the local trigger
can wait for it) and leaves a marker per prepare and per submission for the test to check.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
from pathlib import Path

from faxflow.airflow.local_jobs import faxflow_command
from faxflow.backends.local import LocalBackend

#: How often the wrapper touches the heartbeat file (well inside the local trigger's staleness limit).
BEAT_SECONDS = 2
#: Starts the job, keeps the heartbeat fresh while it runs, then writes its exit code atomically.
WRAPPER = ('out=$1 err=$2 done=$3 beat=$4; shift 4; touch "$beat"; '
           '(while kill -0 $$ 2>/dev/null; do touch "$beat"; sleep ' + str(BEAT_SECONDS) + '; done) & '
           '"$@" >"$out" 2>"$err"; code=$?; echo $code >"$done.tmp" && mv "$done.tmp" "$done"')


class ShellBackend(LocalBackend):
    name = "shell"

    def prepare(self, variant: str, info: dict) -> list[dict]:
        specs = super().prepare(variant, info)
        (self.log_dir() / f"shell-prepared-{variant}").touch()
        return specs

    def submit(self, resources: dict) -> dict:
        spec = self.spec
        log_dir = Path(spec["log_dir"])
        stem = log_dir / f"{spec['job_name']}.shell"
        files = [f"{stem}.out", f"{stem}.err", f"{stem}.exit", f"{stem}.heartbeat"]
        Path(files[2]).unlink(missing_ok=True)
        process = subprocess.Popen(["/bin/sh", "-c", WRAPPER, "shell-job", *files, *faxflow_command(),
                                    *self.job_args()], start_new_session=True, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        threading.Thread(target=process.wait, daemon=True).start()
        (log_dir / f"shell-submitted-{spec['job_name']}").write_text(shlex.join(self.job_args()))
        return {"backend": self.name, "job_id": str(process.pid), "job_name": spec["job_name"], "host": "localhost",
                "pid": process.pid, "stdout": files[0], "stderr": files[1], "exit_file": files[2],
                "heartbeat_file": files[3]}
