"""A fake conda env holding stand-ins for paxer and a python with hax (tests only).

:func:`make_fake_env` builds ``<dir>/env`` with ``bin/paxer`` (the stand-in), ``bin/python`` (this
interpreter with the stand-in ``pax``/``hax`` packages importable) and ``expect.json``, what the
stand-ins insist on. Activate it with ``source <this dir>/activate <env>``.
"""

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ACTIVATE = f"source {HERE / 'activate'}"


def make_fake_env(directory: Path, expect: dict, python: str = sys.executable) -> Path:
    env = Path(directory) / "env"
    (env / "bin").mkdir(parents=True, exist_ok=True)
    shutil.copy(HERE / "bin" / "paxer", env / "bin" / "paxer")
    (env / "bin" / "python").write_text(f'#!/bin/bash\nexport PYTHONPATH="{HERE / "lib"}" FAKEPAX_ENV="{env}"\n'
                                      f'exec "{python}" "$@"\n')
    (env / "bin" / "python").chmod(0o755)
    (env / "expect.json").write_text(json.dumps(expect))
    for path in (env, env / "bin", HERE, HERE / "lib", HERE / "lib" / "hax", HERE / "lib" / "pax"):
        path.chmod(path.stat().st_mode | 0o055)
    return env

