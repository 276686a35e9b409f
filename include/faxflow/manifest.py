"""The manifest: a plan frozen into verified files, one small slice per group.

Layout (``docs/reliability.md``, manifests)::

    <directory>/plan-<d12>/index.json             campaign header, variants (no production lists), groups
    <directory>/plan-<d12>/groups/g<NNNNNN>.json  header + one variant + one group + its productions

``d12`` is the start of the index's sha256; the index records every slice's sha256. Every reader
is handed the expected sha256 by its caller and refuses content that does not hash to it. The
content is then re-validated: names must be safe, settings must pass the campaign models, the keys,
directories, production ids and seeds are derived again from the header and settings and must
match, and every directory must resolve inside the output root. A job reads only its slice.
"""

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from faxflow import __version__
from faxflow.config import ProductionSettings, check_safe_name
from faxflow.errors import BadInputError
from faxflow.names import REMOTE_HOME_PREFIXES
from faxflow.plan import (
    MANIFEST_VERSION,
    Group,
    Plan,
    PlannedVariant,
    expand_productions,
    job_name,
    processing_key,
    seed_salt,
    sim_key,
)

HEADER_KEYS = ("campaign", "description", "run_id", "faxflow_version", "manifest_version", "campaign_path",
               "output_root", "seed", "seed_policy")
SEED_POLICIES = ("fixed", "per_run")
#: A slice never needs more; anything larger is not a slice faxflow wrote.
MAX_SLICE_BYTES = 1 << 20
#: Temporary manifest directories older than this are leftovers of a killed planner.
STALE_TEMP_SECONDS = 3600
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(BadInputError):
    """A manifest that is not exactly what the planner wrote (exit code of bad input)."""


@dataclass(frozen=True)
class ManifestFiles:
    index_path: Path
    index_digest: str
    slices: dict  # global group index → (slice path, slice sha256)


def slice_name(group_index: int) -> str:
    return f"g{group_index:06d}.json"


def _encode(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def _encode_productions(productions) -> bytes:
    """``_encode([p.to_dict() for p in productions])``, formatted directly (ids are safe names: no escapes)."""
    return ("[" + ",".join([f'{{"id":"{p.id}","index":{p.index},"n_events":{p.n_events},"seed":{p.seed}}}'
                            for p in productions]) + "]").encode()


def _write_private(path: Path, content: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)


def _variant_entry(variant: PlannedVariant) -> dict:
    return {"name": variant.name, "key": variant.key, "sim_key": variant.sim_key, "settings": variant.settings,
            "output_dir": variant.output_dir, "sim_dir": variant.sim_dir, "productions": len(variant.productions),
            "group_indices": variant.group_indices}


def write_manifest(plan: Plan, directory) -> ManifestFiles:
    """Write ``plan`` as an index plus one slice per group, atomically; return paths and digests."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    remove_stale_temporaries(directory)
    header = {key: getattr(plan, key) for key in HEADER_KEYS}
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=".manifest-"))
    try:
        (staging / "groups").mkdir(mode=0o700)
        variants = {variant.name: variant for variant in plan.variants}
        positions = {name: {pid: i for i, pid in enumerate(v.productions.ids)} for name, v in variants.items()}
        entries = {name: _variant_entry(variant) for name, variant in variants.items()}
        # The header and each variant are encoded once and spliced into every slice of theirs.
        opening = _encode({"kind": "slice", **header})[:-1]
        encoded = {name: _encode(entry) for name, entry in entries.items()}
        groups, digests = [], {}
        for group in plan.groups:
            variant = variants[group.variant]
            first = positions[group.variant][group.production_ids[0]]
            productions = variant.productions[first:first + len(group.production_ids)]
            entry = {"index": group.index, "variant": group.variant, "number": group.number,
                     "job_name": group.job_name, "first": productions[0].index, "count": len(productions)}
            content = b"".join((opening, b',"variant":', encoded[group.variant], b',"group":', _encode(entry),
                                b',"productions":', _encode_productions(productions), b"}"))
            if len(content) > MAX_SLICE_BYTES:
                raise BadInputError(f"group {group.index} of {plan.campaign} would need a {len(content)}-byte "
                                    f"manifest slice (limit {MAX_SLICE_BYTES}); lower cluster.productions_per_job")
            _write_private(staging / "groups" / slice_name(group.index), content)
            digests[group.index] = hashlib.sha256(content).hexdigest()
            groups.append({**entry, "slice": slice_name(group.index), "slice_sha256": digests[group.index]})
        index = _encode({"kind": "index", **header, "variants": list(entries.values()), "groups": groups})
        _write_private(staging / "index.json", index)
        index_digest = hashlib.sha256(index).hexdigest()
        final = directory / f"plan-{index_digest[:12]}"
        if final.exists():
            shutil.rmtree(staging)
        else:
            os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ManifestFiles(final / "index.json", index_digest,
                         {g: (final / "groups" / slice_name(g), digest) for g, digest in digests.items()})


def remove_stale_temporaries(directory: Path) -> None:
    """Remove ``.manifest-*`` left by a planner that was killed (only old ones: another may be writing)."""
    for leftover in directory.glob(".manifest-*"):
        try:
            if time.time() - leftover.stat().st_mtime > STALE_TEMP_SECONDS:
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
        except OSError:
            pass


# -- reading -------------------------------------------------------------------------------------------
def read_verified(path, digest: str, *, max_bytes: int = 0) -> dict:
    """The JSON content of ``path`` if it hashes to ``digest`` and this faxflow understands it."""
    path = Path(path)
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise ManifestError(f"{path}: expected digest {digest!r} is not a sha256 (64 lowercase hex digits)")
    try:
        if max_bytes and path.stat().st_size > max_bytes:
            raise ManifestError(f"{path}: {path.stat().st_size} bytes, more than a manifest slice can hold "
                                f"({max_bytes})")
        content = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{path}: cannot read manifest: {error.strerror or error}") from None
    actual = hashlib.sha256(content).hexdigest()
    if actual != digest:
        raise ManifestError(f"{path}: content hashes to {actual}, expected {digest}; the manifest was changed "
                            "after planning (re-plan the campaign)")
    try:
        data = json.loads(content)
    except ValueError as error:
        raise ManifestError(f"{path}: not JSON: {error}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: a manifest holds a JSON object, got {type(data).__name__}")
    if data.get("manifest_version") != MANIFEST_VERSION:
        raise ManifestError(f"{path}: manifest format {data.get('manifest_version')!r} is not understood by this "
                            f"faxflow (format {MANIFEST_VERSION})")
    if data.get("faxflow_version") != __version__:
        raise ManifestError(f"{path}: planned with faxflow {data.get('faxflow_version')}, this is faxflow "
                            f"{__version__}; a campaign must run with the faxflow that planned it")
    return data


def _header(data: dict, path: Path) -> dict:
    missing = [key for key in HEADER_KEYS if key not in data]
    if missing:
        raise ManifestError(f"{path}: header lacks {', '.join(missing)}")
    header = {key: data[key] for key in HEADER_KEYS}
    for key in ("campaign", "run_id"):
        _safe(header[key], path, key)
    if not isinstance(header["description"], str):
        raise ManifestError(f"{path}: description must be text")
    for key in ("output_root", "campaign_path"):
        value = header[key]
        on_cluster = key == "output_root" and isinstance(value, str) and value.startswith(
            tuple(f"{prefix}/" for prefix in REMOTE_HOME_PREFIXES))
        if not isinstance(value, str) or "\0" in value or not (Path(value).is_absolute() or on_cluster):
            raise ManifestError(f"{path}: {key} {value!r} must be an absolute path")
    if type(header["seed"]) is not int or header["seed"] < 0:
        raise ManifestError(f"{path}: seed {header['seed']!r} must be an integer ≥ 0")
    if header["seed_policy"] not in SEED_POLICIES:
        raise ManifestError(f"{path}: seed_policy {header['seed_policy']!r} (allowed: {', '.join(SEED_POLICIES)})")
    return header


def _safe(value, path: Path, what: str) -> str:
    try:
        return check_safe_name(value)
    except ValueError as error:
        raise ManifestError(f"{path}: {what}: {error}") from None


def check_inside(root, relative: str, path, what: str) -> None:
    """Refuse ``relative`` if, below ``root``, it resolves (symbolic links followed) outside ``root``."""
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if base not in target.parents:
        raise ManifestError(f"{path}: {what} {relative!r} resolves to {target}, outside the output root {base}")


def _variant(header: dict, entry, path: Path) -> dict:
    if not isinstance(entry, dict):
        raise ManifestError(f"{path}: a variant entry must be an object")
    name = _safe(entry.get("name"), path, "variant name")
    where = f"{path}: variant {name}"
    settings = entry.get("settings")
    try:
        ProductionSettings.model_validate_json(json.dumps(settings))
    except ValidationError as error:
        first = error.errors()[0]
        raise ManifestError(f"{where}: settings.{'.'.join(map(str, first['loc']))}: "
                            f"{first['msg']}") from None
    campaign = header["campaign"]
    simulation_key = sim_key(settings, header["seed"], seed_salt(header["seed_policy"], header["run_id"]))
    key = processing_key(settings, simulation_key)
    expected = {"key": key, "sim_key": simulation_key, "output_dir": f"{campaign}/{name}-{key}",
                "sim_dir": f"{campaign}/sim-{simulation_key}", "productions": settings["number_job"]}
    for field, value in expected.items():
        if entry.get(field) != value:
            raise ManifestError(f"{where}: {field} is {entry.get(field)!r} but the settings and header give "
                                f"{value!r}; the manifest was edited")
    if Path(header["output_root"]).is_absolute():  # a $HOME/… root is checked where it is resolved
        for field in ("output_dir", "sim_dir"):
            check_inside(header["output_root"], expected[field], path, field)
    return {**entry, "name": name, **expected}


def _group(header: dict, variant: dict, entry, path: Path) -> dict:
    if not isinstance(entry, dict):
        raise ManifestError(f"{path}: a group entry must be an object")
    numbers = {key: entry.get(key) for key in ("index", "number", "first", "count")}
    if any(type(value) is not int or value < 0 for value in numbers.values()) or numbers["count"] < 1 \
            or numbers["first"] + numbers["count"] > variant["productions"]:
        raise ManifestError(f"{path}: group {numbers} is not a range of variant {variant['name']}'s productions")
    name = job_name(header["campaign"], header["run_id"], variant["name"], numbers["number"])
    if entry.get("job_name") != name or entry.get("variant") != variant["name"]:
        raise ManifestError(f"{path}: group {numbers['index']} job name/variant does not match the plan")
    return entry


def _planned(header: dict, variant: dict, indices: range) -> PlannedVariant:
    try:
        productions = expand_productions(header["campaign"], variant["name"], variant["settings"],
                                         variant["sim_key"], header["seed"], indices)
    except BadInputError as error:
        raise ManifestError(str(error)) from None
    return PlannedVariant.model_construct(
        name=variant["name"], key=variant["key"], sim_key=variant["sim_key"], settings=variant["settings"],
        output_dir=variant["output_dir"], sim_dir=variant["sim_dir"], productions=productions,
        group_indices=list(variant.get("group_indices") or []))


def _plan(header: dict, variants: list, groups: list) -> Plan:
    return Plan.model_construct(**header, variants=variants, groups=groups)


def load_index(path, digest: str) -> Plan:
    """The whole plan from a verified index (productions derived again from the header and settings)."""
    path = Path(path)
    data = read_verified(path, digest)
    if data.get("kind") != "index":
        raise ManifestError(f"{path}: this is a manifest {data.get('kind')!r}, not an index")
    header = _header(data, path)
    entries = {}
    for entry in data.get("variants") or []:
        variant = _variant(header, entry, path)
        entries[variant["name"]] = variant
    planned = {name: _planned(header, variant, range(variant["productions"])) for name, variant in entries.items()}
    groups = []
    for entry in data.get("groups") or []:
        variant = entries.get(entry.get("variant") if isinstance(entry, dict) else None)
        if variant is None:
            raise ManifestError(f"{path}: group of unknown variant {entry!r:.80}")
        entry = _group(header, variant, entry, path)
        ids = [p.id for p in planned[variant["name"]].productions[entry["first"]:entry["first"] + entry["count"]]]
        groups.append(Group.model_construct(index=entry["index"], variant=variant["name"], number=entry["number"],
                                            production_ids=ids, job_name=entry["job_name"]))
    return _plan(header, list(planned.values()), groups)


def load_slice(path, digest: str) -> Plan:
    """One group's plan (one variant, one group, its productions) from a verified slice."""
    path = Path(path)
    data = read_verified(path, digest, max_bytes=MAX_SLICE_BYTES)
    if data.get("kind") != "slice":
        raise ManifestError(f"{path}: this is a manifest {data.get('kind')!r}, not a group slice")
    header = _header(data, path)
    variant = _variant(header, data.get("variant"), path)
    entry = _group(header, variant, data.get("group"), path)
    planned = _planned(header, variant, range(entry["first"], entry["first"] + entry["count"]))
    listed = data.get("productions")
    derived = [p.to_dict() for p in planned.productions]
    if listed != derived:
        wrong = next((d for i, d in enumerate(derived) if not isinstance(listed, list) or i >= len(listed)
                      or listed[i] != d), derived[0])
        raise ManifestError(f"{path}: production {wrong['id']} does not match what the plan derives "
                            f"(id, index, seed, n_events); the manifest was edited")
    group = Group.model_construct(index=entry["index"], variant=variant["name"], number=entry["number"],
                                  production_ids=[p.id for p in planned.productions], job_name=entry["job_name"])
    return _plan(header, [planned], [group])


def load_manifest(path, digest: str) -> Plan:
    """An index or a slice, whichever ``path`` holds."""
    path = Path(path)
    kind = read_verified(path, digest).get("kind")
    return load_slice(path, digest) if kind == "slice" else load_index(path, digest)
