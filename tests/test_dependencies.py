"""The PyPI packages named pax and hax are unrelated projects: they must never be dependencies."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {"pax", "hax"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[=<>!~;]", requirement.strip(), maxsplit=1)[0].lower()


def test_pyproject_never_depends_on_pax_or_hax():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    assert requirements, "no dependencies parsed"
    assert FORBIDDEN.isdisjoint(_name(r) for r in requirements)


def test_lock_never_pins_pax_or_hax():
    pinned = [_name(line) for line in (ROOT / "constraints.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert "apache-airflow" in pinned and "numba" in pinned
    assert FORBIDDEN.isdisjoint(pinned)


def test_lock_pins_every_package_exactly():
    lines = [line for line in (ROOT / "constraints.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    assert all(re.match(r"^[A-Za-z0-9_.\-]+==\S+$", line) for line in lines), lines
    assert "apache-airflow==3.3.2" in lines and "apache-airflow-providers-ssh==7.0.1" in lines
