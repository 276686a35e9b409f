"""The kernel cache: chosen before kernels load, per version and CPU, warmed once, cold jobs say so."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from faxflow import __version__
from faxflow.engines.builtin import kernel_cache

JOB = """
import sys
from pathlib import Path
from faxflow.engines.builtin import BuiltinEngine
directory = BuiltinEngine.from_settings({}).prepare(Path(sys.argv[1]), print)
print("cache:", directory)
"""


@pytest.fixture(scope="module")
def session_cache():
    """The suite's warm kernel cache (tests/conftest.py), compiled here if the suite finds it cold."""
    directory = kernel_cache.use()
    kernel_cache.ensure_warm(directory, print)
    return directory


def _numba_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.suffix in (".nbi", ".nbc")]


def _cold_copy(session_cache: Path, base: Path) -> Path:
    """A kernel directory holding the session's compiled kernels but no warm marker: what a job sees
    after a code change or when it is the first on a node (numba then loads instead of compiling,
    which keeps this test fast; the compiling path is the same code)."""
    target = base / session_cache.name
    shutil.copytree(session_cache, target, ignore=shutil.ignore_patterns("warm-*", ".warm*"))
    return target


def _job(env_cache: Path | None, output_root: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in (kernel_cache.ENV_VAR, "NUMBA_CACHE_DIR")}
    if env_cache is not None:
        env[kernel_cache.ENV_VAR] = str(env_cache)
    result = subprocess.run([sys.executable, "-c", JOB, str(output_root)], env=env, capture_output=True, text=True,
                            check=True, timeout=300)
    return result.stdout


def test_cold_job_logs_compiling_and_its_time_then_the_cache_is_warm(session_cache, tmp_path):
    directory = _cold_copy(session_cache, tmp_path / "kernels")
    first = _job(tmp_path / "kernels", tmp_path / "out")
    assert f"compiling kernels (no warm cache in {directory})…" in first
    assert "kernels compiled in " in first and first.index("compiling kernels") < first.index("kernels compiled in")
    assert f"cache: {directory}" in first
    assert kernel_cache.is_warm(directory)
    second = _job(tmp_path / "kernels", tmp_path / "out")
    assert "compiling kernels" not in second and f"cache: {directory}" in second


def test_without_the_variable_the_cache_lives_under_the_output_root_per_version_and_cpu(session_cache, tmp_path):
    output_root = tmp_path / "out"
    expected = output_root / ".cache" / "kernels" / f"{__version__}-{kernel_cache.cpu_tag()}"
    _cold_copy(session_cache, output_root / ".cache" / "kernels")
    out = _job(None, output_root)
    assert f"cache: {expected}" in out and "kernels compiled in" in out
    assert _numba_files(expected)
    assert __version__ in expected.name and kernel_cache.cpu_tag() in expected.name


def test_marker_is_tied_to_the_kernel_sources(session_cache, tmp_path, monkeypatch):
    directory = _cold_copy(session_cache, tmp_path)
    (directory / f"warm-{'0' * 16}.json").write_text("{}")  # a marker of other kernel code
    assert not kernel_cache.is_warm(directory)
    monkeypatch.setattr(kernel_cache, "source_digest", lambda: "0" * 64)
    assert kernel_cache.is_warm(directory)


def test_warm_command_reports_the_directory_and_time(session_cache, tmp_path):
    _cold_copy(session_cache, tmp_path / "kernels")
    env = {k: v for k, v in os.environ.items() if k not in (kernel_cache.ENV_VAR, "NUMBA_CACHE_DIR")}
    command = [sys.executable, "-m", "faxflow.cli", "warm", "--cache-dir", str(tmp_path / "kernels")]
    first = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    second = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    assert first.startswith("kernels compiled in ") and str(tmp_path / "kernels") in first
    assert second.startswith("kernels already warm in ") and "loaded in" in second


def test_unusable_cache_is_a_storage_error_naming_the_directory_and_variable(tmp_path):
    not_a_directory = tmp_path / "file"
    not_a_directory.write_text("")  # below a regular file nothing can be created, even by root
    script = "from faxflow.engines.builtin import kernel_cache; kernel_cache.use()"
    env = {**os.environ, kernel_cache.ENV_VAR: str(not_a_directory / "kernels")}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "StorageError" in result.stderr and str(not_a_directory / "kernels") in result.stderr
    assert kernel_cache.ENV_VAR in result.stderr and "not writable" in result.stderr


def test_warm_cache_dir_wins_over_the_environment(session_cache, tmp_path):
    _cold_copy(session_cache, tmp_path / "chosen")
    env = {**os.environ, kernel_cache.ENV_VAR: str(tmp_path / "from-env")}
    command = [sys.executable, "-m", "faxflow.cli", "warm", "--cache-dir", str(tmp_path / "chosen")]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True, timeout=300).stdout
    assert str(tmp_path / "chosen") in out and not (tmp_path / "from-env").exists()


def test_every_numba_module_is_listed_so_its_code_is_warmed_and_digested():
    package = Path(kernel_cache.__file__).parent
    with_kernels = {".".join(("faxflow", "engines", "builtin", *path.relative_to(package).with_suffix("").parts))
                    for path in package.rglob("*.py") if "njit" in path.read_text() and path.name != "kernel_cache.py"}
    assert with_kernels == set(kernel_cache.KERNEL_MODULES)


def test_every_kernel_module_imported_first_caches_under_the_kernel_cache(tmp_path):
    """numba fixes a kernel's cache location at import: whichever module a process imports first, its
    kernels cache under the chosen directory, never in the installed package's ``__pycache__``."""
    code = ("import importlib, sys, numba\n"
            "importlib.import_module(sys.argv[1])\n"
            "print(numba.config.CACHE_DIR)\n")
    env = {**os.environ, kernel_cache.ENV_VAR: str(tmp_path)}
    for name in kernel_cache.KERNEL_MODULES:
        result = subprocess.run([sys.executable, "-c", code, name], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        assert Path(result.stdout.strip()).parent == tmp_path.resolve(), name


def test_warming_runs_the_kept_raw_frame_coder(session_cache):
    """``raw: keep`` jobs find the frame coder's kernels warm too: warming writes and reads a raw file."""
    code = ("from faxflow.engines.builtin import kernel_cache, rawio\n"
            "kernel_cache.use()\n"
            "kernel_cache._compile_all()\n"
            "print(bool(rawio._split_zigzag.signatures), bool(rawio._unsplit_zigzag.signatures))\n")
    env = {**os.environ, kernel_cache.ENV_VAR: str(session_cache.parent)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]
