"""Done records: the proof that a step completed, checked against the files it read and wrote.

A step's outputs are staged under a temporary name and renamed into place; only then is its done
record written (itself atomically). A step is skipped only if its record exists and the sha256
of every input and output still matches, so a killed step, a truncated file or an edited input
all cause a re-run.
"""

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

_HASH_CACHE: dict[tuple, str] = {}


def sha256(path: Path) -> Optional[str]:
    """sha256 of a file, or of a directory's (relative name, content) pairs; None if missing."""
    path = Path(path)
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    if path.is_dir():
        digest = hashlib.sha256()
        for child in sorted(p for p in path.rglob("*") if p.is_file()):
            digest.update(str(child.relative_to(path)).encode() + b"\0" + (sha256(child) or "").encode())
        return digest.hexdigest()
    cache_key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if cache_key not in _HASH_CACHE:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        _HASH_CACHE[cache_key] = digest.hexdigest()
    return _HASH_CACHE[cache_key]


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(handle.name, path)


def publish(staged: Path, final: Path) -> None:
    """Move a finished output from its staging name to its final name."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.is_dir():
        shutil.rmtree(final)
    os.replace(staged, final)


def read_record(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def record_is_valid(record: Optional[dict], inputs: list[Path], outputs: list[Path], identity: dict) -> bool:
    """True if ``record`` describes exactly these inputs and outputs for this step identity."""
    if not record or any(record.get(key) != value for key, value in identity.items()):
        return False
    current = {**file_hashes(inputs, "inputs"), **file_hashes(outputs, "outputs")}
    recorded = {**{f"inputs:{k}": v for k, v in record.get("inputs", {}).items()},
                **{f"outputs:{k}": v for k, v in record.get("outputs", {}).items()}}
    return None not in current.values() and current == recorded


def file_hashes(paths: list[Path], kind: str = "") -> dict:
    prefix = f"{kind}:" if kind else ""
    return {f"{prefix}{Path(p).name}": sha256(p) for p in paths}
