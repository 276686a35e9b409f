"""The manifest contract: digests checked by every reader, content derived again, paths kept in the root."""

import hashlib
import json
import os
import stat
import subprocess
import sys
import time

import pytest

from faxflow.config import campaign_from_dict
from faxflow.errors import BadInputError
from faxflow.manifest import MAX_SLICE_BYTES, ManifestError, load_index, load_manifest, load_slice, write_manifest
from faxflow.plan import make_plan

BASE = {"name": "camp", "number_job": 7, "number_event_per_job": 10, "cluster": {"productions_per_job": 3},
        "variants": [{"name": "a"}, {"name": "b", "processing": {"s2_min_channels": 3}}]}


@pytest.fixture
def manifest(tmp_path):
    plan = make_plan(campaign_from_dict(BASE, str(tmp_path / "camp.yaml")), output_root=str(tmp_path / "out"))
    return plan, write_manifest(plan, tmp_path / "manifests")


def rewrite(path, edit):
    """Edit a manifest file in place; return the sha256 of the edited content."""
    data = json.loads(path.read_bytes())
    edit(data)
    content = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    path.write_bytes(content)
    return hashlib.sha256(content).hexdigest()


def test_index_and_slices_round_trip(manifest):
    plan, files = manifest
    assert files.index_path.parent.name == f"plan-{files.index_digest[:12]}"
    assert load_index(files.index_path, files.index_digest).to_dict() == plan.to_dict()
    path, digest = files.slices[4]
    one = load_slice(path, digest)
    assert [g.index for g in one.groups] == [4] and [v.name for v in one.variants] == ["b"]
    assert [p.id for p in one.variants[0].productions] == plan.groups[4].production_ids
    assert one.variants[0].productions == plan.variant("b").productions[3:6]
    assert load_manifest(path, digest).groups == one.groups
    assert write_manifest(plan, files.index_path.parent.parent) == files  # same plan, same files


def test_files_are_private_and_stale_temporaries_removed(manifest, tmp_path):
    plan, files = manifest
    assert stat.S_IMODE(files.index_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.index_path.parent.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path, _ in files.slices.values())
    stale = tmp_path / "manifests" / ".manifest-killed"
    stale.mkdir()
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    fresh = tmp_path / "manifests" / ".manifest-writing"
    fresh.mkdir()
    write_manifest(plan, tmp_path / "manifests")
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("edit", [
    pytest.param(lambda d: d["productions"][0].update(seed=d["productions"][0]["seed"] + 1), id="seed"),
    pytest.param(lambda d: d["productions"][0].update(n_events=10 ** 6), id="events"),
    pytest.param(lambda d: d["variant"].update(output_dir="../../elsewhere"), id="output_dir"),
    pytest.param(lambda d: d["productions"][0].update(id="../../../etc/x"), id="production_id"),
])
def test_tampered_slice_is_refused_even_with_a_matching_digest(manifest, edit):
    _, files = manifest
    path, digest = files.slices[0]
    new_digest = rewrite(path, edit)
    with pytest.raises(ManifestError, match="changed after planning") as refused:
        load_slice(path, digest)
    assert str(path) in str(refused.value) and refused.value.exit_code == 3
    with pytest.raises(ManifestError, match="edited|not a safe name") as refused:
        load_slice(path, new_digest)  # re-derived content does not match what was written
    assert isinstance(refused.value, BadInputError) and str(path) in str(refused.value)


def test_allow_pickle_is_honoured_only_as_planned(tmp_path):
    table = tmp_path / "events.csv"
    table.write_text("event_number,x,y,z,cs1,cs2\n0,1.0,2.0,-30.0,50.0,5000.0\n")
    raw = {**BASE, "instructions": {"source": "table", "path": str(table)}, "variants": [{"name": "a"}]}
    plan = make_plan(campaign_from_dict(raw, str(tmp_path / "c.yaml")), output_root=str(tmp_path / "out"))
    path, digest = write_manifest(plan, tmp_path / "manifests").slices[0]
    assert load_slice(path, digest).variants[0].settings["instructions"]["allow_pickle"] is False
    new_digest = rewrite(path, lambda d: d["variant"]["settings"]["instructions"].update(allow_pickle=True))
    with pytest.raises(ManifestError, match="changed after planning"):
        load_slice(path, digest)
    with pytest.raises(ManifestError, match="key is .* the manifest was edited"):
        load_slice(path, new_digest)


def test_job_refuses_a_tampered_slice_and_writes_nothing(manifest, tmp_path):
    _, files = manifest
    path, digest = files.slices[0]
    rewrite(path, lambda d: d["variant"].update(output_dir="../../escaped"))
    result = subprocess.run([sys.executable, "-m", "faxflow.cli", "job", "--manifest", str(path), "--digest", digest],
                            capture_output=True, text=True)
    assert result.returncode == 3, result.stdout + result.stderr
    assert str(path) in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "escaped").exists()


def test_digest_mismatch_wrong_kind_and_bad_digest(manifest):
    _, files = manifest
    path, digest = files.slices[1]
    other_path, other_digest = files.slices[2]
    with pytest.raises(ManifestError, match="expected"):
        load_slice(path, other_digest)
    with pytest.raises(ManifestError, match="not a group slice"):
        load_slice(files.index_path, files.index_digest)
    with pytest.raises(ManifestError, match="not an index"):
        load_index(other_path, other_digest)
    with pytest.raises(ManifestError, match="not a sha256"):
        load_slice(path, "abc")
    with pytest.raises(ManifestError, match="cannot read"):
        load_slice(path.with_name("g999999.json"), digest)


def test_tampered_index_is_refused(manifest):
    _, files = manifest
    new_digest = rewrite(files.index_path, lambda d: d["groups"][0].update(first=5, count=5))
    with pytest.raises(ManifestError, match="changed after planning"):
        load_index(files.index_path, files.index_digest)
    with pytest.raises(ManifestError, match="not a range"):
        load_index(files.index_path, new_digest)


def test_header_is_validated(manifest):
    _, files = manifest
    path, _ = files.slices[0]
    digest = rewrite(path, lambda d: d.update(output_root="relative/root"))
    with pytest.raises(ManifestError, match="output_root .* absolute"):
        load_slice(path, digest)
    digest = rewrite(path, lambda d: d.update(output_root="/tmp", faxflow_version="0.0.1"))
    with pytest.raises(ManifestError, match="planned with faxflow 0.0.1"):
        load_slice(path, digest)


def test_outputs_resolving_outside_the_root_are_refused(manifest, tmp_path):
    _, files = manifest
    (tmp_path / "out").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out" / "camp").symlink_to(tmp_path / "elsewhere")
    path, digest = files.slices[0]
    with pytest.raises(ManifestError, match="outside the output root"):
        load_slice(path, digest)


def test_check_manifest_cli(manifest):
    _, files = manifest
    command = [sys.executable, "-m", "faxflow.cli", "check-manifest", str(files.index_path), "--digest"]
    ok = subprocess.run([*command, files.index_digest], capture_output=True, text=True)
    assert ok.returncode == 0 and "2 variant(s), 6 group(s)" in ok.stdout
    bad = subprocess.run([*command, "0" * 64], capture_output=True, text=True)
    assert bad.returncode == 3 and str(files.index_path) in bad.stderr


def test_a_slice_stays_small_and_an_oversized_group_is_refused(tmp_path):
    raw = {**BASE, "number_job": 20000, "cluster": {"productions_per_job": 20000}, "variants": [{"name": "a"}],
           "limits": {"max_productions_per_variant": 20000}}
    plan = make_plan(campaign_from_dict(raw, str(tmp_path / "c.yaml")), output_root=str(tmp_path / "out"))
    with pytest.raises(BadInputError, match=f"limit {MAX_SLICE_BYTES}.*productions_per_job"):
        write_manifest(plan, tmp_path / "manifests")
    assert [p.name for p in (tmp_path / "manifests").iterdir()] == []
