"""Runs inside the pax conda env (Python 3.6 era): never imported by faxflow itself.

``python pax_runner.py paxer SEED ARGS...``
    seed numpy's global random state and Python's ``random`` from SEED (fax draws every random
    number from numpy's global state), then run the env's ``paxer`` with ARGS as its argv.
``python pax_runner.py versions``
    print ``{"pax": ..., "hax": ...}`` as JSON.
``python pax_runner.py minitrees PROCESSED OUT_DIR TREEMAKER...``
    build hax minitrees for the processed ROOT file, offline (no runs database), and write one
    CSV per treemaker, ``OUT_DIR/<TREEMAKER>.csv``.

Written for Python 3.6: no dataclasses, no walrus, no ``from __future__ import annotations``.
"""

import json
import os
import sys

# This file sits next to faxflow's own engine modules (one is named pax.py): they must not
# shadow the env's pax and hax packages.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != _HERE]

SEED_MODULUS = 2 ** 32  # numpy's legacy seed takes 32 bits


def run_paxer(seed, argv):
    import random
    import runpy
    import shutil

    import numpy

    paxer = shutil.which("paxer")
    if paxer is None:
        sys.exit("pax_runner: no paxer on PATH (is the pax env activated?)")
    try:
        with open(paxer) as handle:
            compile(handle.read(), paxer, "exec")
    except (SyntaxError, UnicodeDecodeError, ValueError):
        sys.exit("pax_runner: " + paxer + " is not a Python script, so its random state cannot be seeded")
    numpy.random.seed(seed % SEED_MODULUS)
    random.seed(seed)
    sys.argv = [paxer] + list(argv)
    runpy.run_path(paxer, run_name="__main__")


def versions():
    import hax
    import pax

    print(json.dumps({"pax": pax.__version__, "hax": hax.__version__}))


def minitrees(processed, out_dir, treemakers):
    import hax

    name = os.path.basename(processed)
    if name.endswith(".root"):
        name = name[:-len(".root")]
    hax.init(experiment="XENON1T", main_data_paths=[os.path.dirname(os.path.abspath(processed))],
             minitree_paths=[os.path.abspath(out_dir)], pax_version_policy="loose", use_runs_db=False,
             corrections=[])
    rows = {}
    for treemaker in treemakers:
        frame = hax.minitrees.load(name, [treemaker])
        frame.to_csv(os.path.join(out_dir, treemaker + ".csv"), index=False, float_format="%.17g")
        rows[treemaker] = len(frame)
    print(json.dumps({"rows": rows}))


def main(argv):
    if len(argv) >= 2 and argv[0] == "paxer":
        run_paxer(int(argv[1]), argv[2:])
    elif argv == ["versions"]:
        versions()
    elif len(argv) >= 4 and argv[0] == "minitrees":
        minitrees(argv[1], argv[2], argv[3:])
    else:
        sys.exit("usage: pax_runner.py paxer SEED ARGS... | versions | minitrees PROCESSED OUT_DIR TREEMAKER...")


if __name__ == "__main__":
    main(sys.argv[1:])
