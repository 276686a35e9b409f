"""Set up an Airflow home for faxflow: environment, metadata DB, pools from the campaign files.

Used by the demo runner, ``make up`` (``docker/standalone.sh``), and the tests. Command line::

    python -m faxflow.airflow.home env    [--home DIR] [--project DIR]   # print export lines
    python -m faxflow.airflow.home setup  [--home DIR] [--project DIR]   # migrate the DB + create pools
    python -m faxflow.airflow.home pools  [--home DIR] [--project DIR]   # create + record the pools
    python -m faxflow.airflow.home password [--home DIR]                 # the UI user's password (made once)
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import sys
from pathlib import Path
from typing import Optional

#: The project checkout this package was installed (editable) from, if any.
SOURCE_ROOT = Path(__file__).resolve().parents[3]


def airflow_env(home: Path, project: Path) -> dict[str, str]:
    """Environment variables that point Airflow at the project's dags/plugins/configs.

    :param home: ``AIRFLOW_HOME`` (created if missing)
    :param project: the faxflow project root (holds ``dags/``, ``plugins/``, ``configs/``)
    """
    home = Path(home).resolve()
    project = Path(project).resolve()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(project / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(project / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": os.environ.get("AIRFLOW__CORE__UNIT_TEST_MODE", "False"),
        "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": os.environ.get(
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL", "30"),
        "FAXFLOW_PROJECT_ROOT": str(project),
        "FAXFLOW_CONFIGS_DIR": os.environ.get("FAXFLOW_CONFIGS_DIR", str(project / "configs")),
    }


#: The UI user of the simple auth manager (``[core] simple_auth_manager_users`` default ``admin:admin``).
ADMIN_USER = "admin"


def password_file(home: Path) -> Path:
    """Where the simple auth manager keeps its passwords (``[core] simple_auth_manager_passwords_file``)."""
    configured = os.environ.get("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE")
    return Path(configured) if configured else Path(home) / "simple_auth_manager_passwords.json.generated"


def admin_password(home: Path) -> str:
    """The admin password, created once in :func:`password_file` and the same on every later start.

    Airflow prints a generated password only when it creates it, so after a restart the log no longer shows
    it; making it here lets every start print the same line.
    """
    path = password_file(home)
    try:
        passwords = json.loads(path.read_text()) if path.exists() else {}
    except ValueError:
        passwords = {}
    if not isinstance(passwords, dict) or not passwords.get(ADMIN_USER):
        passwords = {**(passwords if isinstance(passwords, dict) else {}), ADMIN_USER: secrets.token_urlsafe(12)}
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(passwords) + "\n")
        temporary.chmod(0o600)
        temporary.replace(path)
    return str(passwords[ADMIN_USER])


def apply_env(home: Path, project: Path) -> dict[str, str]:
    """Put :func:`airflow_env` into ``os.environ`` (must happen before ``import airflow``)."""
    env = airflow_env(home, project)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    return env


def campaign_pools(project: Path) -> dict[str, int]:
    from faxflow.airflow.dag_factory import pools

    return pools(Path(os.environ.get("FAXFLOW_CONFIGS_DIR") or Path(project) / "configs"))


def migrate_db() -> None:
    """``airflow db migrate`` in this process (the environment must already be applied)."""
    from airflow.utils.db import upgradedb

    upgradedb()


def create_pools(sizes: dict[str, int]) -> None:
    """Create/resize each pool with ``include_deferred=True`` (deferred group tasks keep their slot); record them."""
    from airflow.utils.session import create_session

    from faxflow.airflow.pool_keeper import ensure_pools

    with create_session() as session:
        ensure_pools(sizes, session)


def pools_command() -> str:
    """The shell command that creates and records every campaign pool of this deployment (for messages)."""
    settings = [f"{key}={shlex.quote(os.environ[key])}" for key in ("AIRFLOW_HOME", "FAXFLOW_CONFIGS_DIR")
                if os.environ.get(key)]
    return " ".join([*settings, shlex.quote(sys.executable), "-m", "faxflow.airflow.home", "pools"])


def setup(home: Path, project: Path) -> dict[str, str]:
    env = apply_env(home, project)
    migrate_db()
    create_pools(campaign_pools(project))
    return env


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faxflow.airflow.home")
    parser.add_argument("action", choices=["env", "setup", "pools", "password"])
    parser.add_argument("--home", default=os.environ.get("AIRFLOW_HOME") or str(SOURCE_ROOT / ".airflow" / "home"))
    parser.add_argument("--project", default=os.environ.get("FAXFLOW_PROJECT_ROOT") or str(SOURCE_ROOT))
    args = parser.parse_args(argv)
    project = Path(args.project)
    if args.action == "env":
        for key, value in airflow_env(Path(args.home), project).items():
            print(f"export {key}={shlex.quote(value)}")
        return 0
    if args.action == "password":
        print(f"Password for user '{ADMIN_USER}': {admin_password(Path(args.home))}")
        return 0
    if args.action == "pools":
        apply_env(Path(args.home), project)
        create_pools(campaign_pools(project))
    else:
        setup(Path(args.home), project)
        admin_password(Path(args.home))
    for name, size in sorted(campaign_pools(project).items()):
        print(f"pool {name}: {size} slots, include_deferred")
    return 0


if __name__ == "__main__":
    sys.exit(main())
