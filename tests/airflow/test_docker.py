"""docker/: every file and variable the compose file and Dockerfile reference exists or is documented."""

import re
import subprocess
import sys

import yaml
from conftest import PROJECT

DOCKER = PROJECT / "docker"


def test_compose_references_exist_and_are_documented():
    compose = yaml.safe_load((DOCKER / "docker-compose.yaml").read_text())
    text = (DOCKER / "docker-compose.yaml").read_text()
    services = compose["services"]
    assert {"postgres", "api-server", "scheduler", "dag-processor", "triggerer"} <= set(services)
    documented = {line.split("=", 1)[0] for line in (DOCKER / ".env.example").read_text().splitlines()
                  if "=" in line and not line.startswith("#")}
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    assert used <= documented, f"undocumented: {used - documented}"
    for name, service in services.items():
        build = service.get("build")
        if build:
            context = (DOCKER / build["context"]).resolve()
            assert context.is_dir() and (context / build["dockerfile"]).is_file()
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("${"):
                continue  # from .env (checked above)
            if source.startswith("."):
                assert (DOCKER / source).resolve().parent.is_dir(), f"{name}: {source}"
        if name not in ("postgres",):
            env = service["environment"]
            assert "no_host_key_check" not in str(env)
    airflow = ("api-server", "scheduler", "dag-processor", "triggerer")
    for name in airflow:  # task and trigger logs on one volume; one login file; never root
        assert "airflow-logs:/opt/airflow/logs" in services[name]["volumes"], name
        assert services[name]["user"] == "${AIRFLOW_UID}:0", name
    assert {"airflow-logs", "airflow-auth"} <= set(compose["volumes"])
    assert "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in services["api-server"]["environment"]
    from faxflow.config import load_campaign

    shipped = {load_campaign(path).cluster.ssh_conn_id for path in (PROJECT / "configs").glob("*.yaml")
               if load_campaign(path).cluster.backend == "slurm"}
    for conn_id in shipped:  # every shipped Slurm campaign's connection is defined
        assert f"AIRFLOW_CONN_{conn_id.upper()}" in services["scheduler"]["environment"], conn_id
    example = (DOCKER / ".env.example").read_text()
    assert "token_urlsafe(64)" in example.split("AIRFLOW_JWT_SECRET=")[0].splitlines()[-1]
    commands = {name: service.get("command") for name, service in services.items()}
    assert commands["triggerer"] == ["airflow", "triggerer"]
    assert commands["airflow-init"][:3] == ["python", "-m", "faxflow.airflow.home"]


def test_dockerfile_copies_existing_files():
    lines = (DOCKER / "Dockerfile").read_text().splitlines()
    assert lines[[line.startswith("FROM") for line in lines].index(True)] == "FROM apache/airflow:3.3.2-python3.11"
    for line in lines:
        if line.startswith("COPY"):
            sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
            for source in sources:
                assert (PROJECT / source).exists(), source


def test_install_script_dry_run_checks_the_lock():
    done = subprocess.run([str(DOCKER / "install-faxflow.sh"), "--dry-run"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert done.returncode == 0, done.stderr
    assert "lock ok" in done.stdout and "constraints.txt" in done.stdout
