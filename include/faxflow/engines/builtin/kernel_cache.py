"""Where the builtin engine's numba kernels are cached, so that jobs load them instead of compiling.

The cache directory is ``$FAXFLOW_KERNEL_CACHE`` if set, else the one the caller names (local runs:
``<output_root>/.cache/kernels``; cluster jobs: ``<remote_root>/cache/kernels``), else
``$XDG_CACHE_HOME/faxflow/kernels`` (``~/.cache`` by default); kernels go into one subdirectory
per faxflow version and CPU, so an upgrade or a different node type never loads foreign code.
numba fixes a kernel's cache location when the kernel's module is imported, so :func:`use` runs
before any kernel module is imported (the engine calls it in ``BuiltinEngine.prepare``; importing
the simulation or processing package calls it without a default).

:func:`warm` compiles every kernel by running a small production in memory and leaves a marker
naming the kernels' source digest; :func:`ensure_warm` does the same, with log lines, when a job
finds no marker (``faxflow warm`` and the cluster's prepare step warm the cache ahead of the jobs).
"""

import fcntl
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from faxflow import __version__
from faxflow.errors import StorageError

ENV_VAR = "FAXFLOW_KERNEL_CACHE"
KERNEL_MODULES = (
    "faxflow.engines.builtin.detector.s2_pattern",
    "faxflow.engines.builtin.simulation.digitizer",
    "faxflow.engines.builtin.simulation.light_sharing",
    "faxflow.engines.builtin.simulation.luminescence",
    "faxflow.engines.builtin.simulation.pmt",
    "faxflow.engines.builtin.simulation.simulate",
    "faxflow.engines.builtin.processing.hits",
    "faxflow.engines.builtin.processing.interactions",
    "faxflow.engines.builtin.processing.peak_properties",
    "faxflow.engines.builtin.processing.peaks",
    "faxflow.engines.builtin.processing.posrec",
    "faxflow.engines.builtin.processing.sumwaveform",
    "faxflow.engines.builtin.radix",
    "faxflow.engines.builtin.rawio",
)
WARM_UP_EVENTS = 20

_active: Path | None = None


def cpu_tag() -> str:
    """The host CPU's LLVM name plus a digest of its feature flags (what compiled code depends on)."""
    from llvmlite import binding

    features = binding.get_host_cpu_features().flatten()
    return f"{binding.get_host_cpu_name()}-{hashlib.sha256(features.encode()).hexdigest()[:8]}"


def cache_dir(default: Path | None = None) -> Path:
    """The kernel directory for this faxflow version and CPU (see the module docstring for the order)."""
    base = os.environ.get(ENV_VAR) or default
    if not base:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "faxflow" / "kernels"
    return Path(base).expanduser().resolve() / f"{__version__}-{cpu_tag()}"


def use(default: Path | None = None) -> Path:
    """Point numba's cache at :func:`cache_dir` and return the directory in use.

    The first call decides (importing a kernel package calls it with no default): numba fixes each
    kernel's cache location when its module is imported, so later calls return that directory.
    """
    global _active
    if _active is not None:
        return _active
    import numba
    import numba.core.entrypoints

    # Our kernels use no numba extensions; loading those of other installed packages (awkward's
    # pulls in awkward and awkward_cpp) would cost each worker ~45 MB of memory for nothing.
    numba.core.entrypoints._already_initialized = True

    directory = cache_dir(default)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError as error:
        raise StorageError(f"kernel cache {directory} is not writable ({error.strerror or error}); "
                           f"point {ENV_VAR} at a writable directory") from error
    os.environ["NUMBA_CACHE_DIR"] = str(directory)  # kept by numba's config reloads and child processes
    numba.config.CACHE_DIR = str(directory)
    _active = directory
    return directory


def source_digest() -> str:
    """sha256 of the kernel modules' sources: a warm marker is valid only for the code it compiled."""
    digest = hashlib.sha256()
    for name in KERNEL_MODULES:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()


def _marker(directory: Path) -> Path:
    return directory / f"warm-{source_digest()[:16]}.json"


def is_warm(directory: Path) -> bool:
    return _marker(directory).is_file()


def _compile_all() -> None:
    """Run every kernel once on a small production (compiling it, or loading it from the cache)."""
    import numpy as np

    from faxflow.engines.builtin import BuiltinEngine
    from faxflow.instructions import INSTRUCTION_COLUMNS

    engine = BuiltinEngine.from_settings({})
    rng = np.random.default_rng(0)
    radius, angle = 30 * np.sqrt(rng.random(WARM_UP_EVENTS)), rng.uniform(-np.pi, np.pi, WARM_UP_EVENTS)
    rows = [f"{i},ER,{radius[i] * np.cos(angle[i]):.3f},{radius[i] * np.sin(angle[i]):.3f},{10 + 4 * i},"
            f"{50 + 2 * i},{10 + 4 * i},1000" for i in range(WARM_UP_EVENTS)]
    with tempfile.TemporaryDirectory(prefix="faxflow-warm-") as tmp:
        instructions = Path(tmp) / "instructions.csv"
        instructions.write_text("\n".join([",".join(INSTRUCTION_COLUMNS), *rows]) + "\n")
        kept = Path(tmp) / "raw.npz"  # kept raw data: the frame coder's kernels too
        batches = engine.simulation_batches(instructions, Path(tmp) / "truth.csv", seed=0, raw_out=kept)
        engine.process_batches(batches, Path(tmp) / "processed.parquet")
        engine.process(kept, Path(tmp) / "processed_from_file.parquet")


def warm(directory: Path) -> float:
    """Compile (or load) every kernel into ``directory`` (as returned by :func:`use`), write the
    warm marker and return the seconds it took."""
    started = time.perf_counter()
    _compile_all()
    seconds = time.perf_counter() - started
    marker = _marker(directory)
    with tempfile.NamedTemporaryFile("w", dir=directory, prefix=".warm-", delete=False) as handle:
        json.dump({"faxflow_version": __version__, "cpu": cpu_tag(), "seconds": round(seconds, 2),
                   "python": sys.version.split()[0]}, handle)
    os.replace(handle.name, marker)
    return seconds


def ensure_warm(directory: Path, echo: Callable[[str], None]) -> float | None:
    """Compile the kernels now if ``directory`` holds no warm cache, saying so; seconds taken or None.

    Jobs starting together on a cold cache take turns (a file lock), so only the first compiles."""
    if is_warm(directory):
        return None
    with open(directory / ".warm.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_warm(directory):
            return None
        echo(f"compiling kernels (no warm cache in {directory})…")
        seconds = warm(directory)
    echo(f"kernels compiled in {seconds:.1f} s")
    return seconds
