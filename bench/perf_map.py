"""Name the builtin engine's compiled kernels for Linux ``perf``, then run the fused chain in a loop.

cProfile charges a kernel's time to the Python function that calls it; ``perf`` samples the machine
code itself, down to the instruction, and sees costs no Python profiler can (the atomic reference
counts numba adds around array views, for instance). This script compiles every kernel into a
fresh cache directory (numba keeps a kernel's LLVM module, and so its function names, only when it
compiled the kernel in this process), writes ``/tmp/perf-<pid>.map`` (perf's symbol file for
generated code) naming each compiled function ``module.function``, and then runs the fused chain
of ``bench_chain.py`` until ``--seconds`` have passed. From another shell, while it runs:

    perf record -e cpu-clock -F 4000 -p <pid> -o /tmp/perf.data -- sleep 10
    perf report -i /tmp/perf.data --sort sym

(``perf`` is Debian's linux-perf; ``cpu-clock`` works where the CPU's counters are not exposed.)

    .venv/bin/python bench/perf_map.py [--events 1000] [--seconds 60]
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from bench_chain import SINGLE_THREAD, run_production  # noqa: E402  (needs the path above)

_MAX_FUNCTION_BYTES = 1 << 16


def demangled(name: str) -> str:
    """``module.function`` of a numba symbol (``_ZN7faxflow…10processing4hits10_find_hitsB…``)."""
    words, rest = [], name[3:] if name.startswith("_ZN") else ""
    while rest[:1].isdigit():
        digits = len(rest) - len(rest.lstrip("0123456789"))
        size = int(rest[:digits])
        words.append(rest[digits:digits + size])
        rest = rest[digits + size:]
    return ".".join(words[-2:]) if len(words) >= 2 else name


def compiled_functions() -> list[tuple[int, str]]:
    """(address, name) of every function in the libraries of faxflow's compiled kernels, and of
    numba's reference-count updates."""
    import re

    from numba.core.registry import CPUDispatcher

    libraries = {}
    for module in [m for name, m in sys.modules.items() if name.startswith("faxflow.")]:
        for value in vars(module).values():
            if isinstance(value, CPUDispatcher):
                for result in value.overloads.values():
                    libraries[id(result.library)] = result.library
    from numba.core.runtime import nrt

    runtime = nrt.rtsys.library  # numba's reference counting, which the kernels call
    functions = {(runtime.get_pointer_to_function(name), name) for name in ("NRT_incref", "NRT_decref")}
    for library in libraries.values():
        for name in re.findall(r'^define [^@]*@"?([^"( ]+)"?\(', library.get_llvm_str(), re.M):
            address = library.get_pointer_to_function(name)
            if address:
                functions.add((address, demangled(name)))
    return sorted(functions)


def write_perf_map(functions: list[tuple[int, str]]) -> Path:
    """/tmp/perf-<pid>.map: one ``start size name`` line per function (size: up to the next one)."""
    path = Path(f"/tmp/perf-{os.getpid()}.map")
    lines = []
    for (address, name), following in zip(functions, functions[1:] + [(None, None)]):
        size = min(following[0] - address, _MAX_FUNCTION_BYTES) if following[0] else _MAX_FUNCTION_BYTES
        lines.append(f"{address:x} {size:x} {name}")
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="perf-kernels-") as cache, \
            tempfile.TemporaryDirectory(prefix="perf-chain-") as work:
        os.environ.update({**SINGLE_THREAD, "FAXFLOW_KERNEL_CACHE": cache})
        from faxflow.engines.builtin import BuiltinEngine

        engine = BuiltinEngine.from_settings({})
        run_production(engine, args.events, Path(work), "fused")  # compiles every kernel in this process
        path = write_perf_map(compiled_functions())
        print(f"pid {os.getpid()}: kernels named in {path}; running the fused chain for {args.seconds:.0f} s",
              flush=True)
        started = time.monotonic()
        while time.monotonic() - started < args.seconds:
            run_production(engine, args.events, Path(work), "fused")


if __name__ == "__main__":
    main()
