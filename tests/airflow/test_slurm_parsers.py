"""Parsers, commands, scripts and the retry policy, on recorded Slurm output (no cluster needed)."""

import shlex

import pytest

from faxflow.slurm import commands
from faxflow.slurm.parsers import (
    SlurmParseError,
    accounting_disabled,
    parse_sacct,
    parse_sbatch,
    parse_scontrol,
    parse_squeue,
    statuses_for,
)
from faxflow.slurm.policy import LOST, Action, Resources, decide
from faxflow.slurm.query import CommandResult, run_query
from faxflow.slurm.script import RemoteLayout, minutes_to_slurm, render_job_script
from faxflow.slurm.states import JobState, normalize_state, parse_exit_code

# Recorded from the Slurm 22.05 sandbox (see docs/slurm-sandbox-notes.md) plus hand-made variants.
SACCT = """\
6|6|ff_demo_g0000|FAILED|2:0|00:00:01
15|12_3|ff_arr|COMPLETED|0:0|00:00:02
16|12_4|ff_arr|RUNNING|0:0|00:00:01
12|12_[5-9]|ff_arr|PENDING|0:0|00:00:00
19|19|sleepy|CANCELLED by 0|0:0|00:00:03
20|20|slow|TIMEOUT|0:0|00:01:02
21|21|big|OUT_OF_MEMORY|0:125|00:00:09
22|22|odd|name|NODE_FAIL|0:0|00:10:00
garbage line without separators
x|y|z|COMPLETED|0:0|00:00:01
23|23|weird|EXPLODED|0:0|00:00:01
"""


def test_sbatch_parsable():
    assert parse_sbatch("42\n").job_id == "42"
    sub = parse_sbatch("warning: something\r\n43;sandbox\r\n")
    assert (sub.job_id, sub.cluster) == ("43", "sandbox")
    with pytest.raises(SlurmParseError):
        parse_sbatch("sbatch: error: Batch job submission failed")
    with pytest.raises(SlurmParseError):
        parse_sbatch("")


def test_sacct_rows_arrays_and_garbage():
    result = parse_sacct(SACCT)
    by_id = {row.job_id: row for row in result.rows}
    assert by_id["6"].state is JobState.FAILED and by_id["6"].exit_code == 2
    assert by_id["12_3"].raw_id == "15" and by_id["12_3"].array_master == "12"
    assert by_id["12_[5-9]"].state is JobState.PENDING
    assert by_id["19"].state is JobState.CANCELLED and by_id["19"].cancelled_by == "0"
    assert by_id["21"].signal == 125
    assert by_id["22"].name == "odd|name" and by_id["22"].state is JobState.NODE_FAIL
    assert len(result.bad_lines) == 3  # no separators, non-numeric ids, unknown state


def test_statuses_fold_arrays_and_leave_missing_out():
    rows = parse_sacct(SACCT).rows
    found = statuses_for(["6", "12", "20", "999"], rows)
    assert "999" not in found  # missing row = unknown, not failure
    assert found["12"].state is JobState.RUNNING  # active elements win while any is active
    assert set(found["12"].elements) == {"12_3", "12_4", "12_[5-9]"}
    finished = statuses_for(["12"], parse_sacct("15|12_3|a|COMPLETED|0:0|1\n16|12_4|a|FAILED|3:0|1\n").rows)
    assert finished["12"].state is JobState.FAILED and finished["12"].exit_code == 3
    assert statuses_for(["12_3"], rows)["12_3"].state is JobState.COMPLETED


def test_squeue_and_scontrol():
    squeue = parse_squeue("24|24|wf_step_42|PENDING|Priority\n4_7|12|arr|COMPLETED|None\nslurm_load_jobs error\n")
    assert [row.job_id for row in squeue.rows] == ["24", "4_7"] and squeue.rows[1].raw_id == "12"
    assert squeue.rows[0].exit_code is None and squeue.bad_lines == ["slurm_load_jobs error"]
    line = ("JobId=19 JobName=my job UserId=slurmtest(1001) JobState=TIMEOUT Reason=TimeLimit Dependency=(null) "
            "ExitCode=0:15 RunTime=00:01:02 TimeLimit=00:01:00 StdOut=/tmp/out 19.out")
    row = parse_scontrol(line + "\n").rows[0]
    assert (row.job_id, row.name, row.state, row.exit_code, row.signal, row.reason) == \
        ("19", "my job", JobState.TIMEOUT, 0, 15, "TimeLimit")
    array = parse_scontrol("JobId=15 ArrayJobId=12 ArrayTaskId=3 JobName=a JobState=COMPLETED ExitCode=0:0\n")
    assert array.rows[0].job_id == "12_3"
    assert parse_scontrol("slurm_load_jobs error: Invalid job id specified\n").rows == []


def test_state_helpers():
    assert normalize_state("CANCELLED by 1234") == (JobState.CANCELLED, "1234")
    assert normalize_state("RUNNING+")[0] is JobState.RUNNING
    assert normalize_state("CD")[0] is JobState.COMPLETED
    assert normalize_state("")[0] is JobState.UNKNOWN and normalize_state("???")[0] is JobState.UNKNOWN
    assert parse_exit_code("0:9") == (0, 9) and parse_exit_code("bad") == (None, None)
    assert accounting_disabled("sacct: error: Slurm accounting storage is disabled")


def _fake_cluster(answers):
    calls = []

    def run(command):
        calls.append(command)
        for prefix, result in answers:
            if command.startswith(prefix):
                return result
        return CommandResult(1, "", "unexpected")

    return run, calls


def test_query_uses_one_sacct_for_many_jobs():
    run, calls = _fake_cluster([("sacct", CommandResult(0, SACCT))])
    outcome = run_query(["6", "19", "20"], run)
    assert len(calls) == 1 and calls[0].startswith("sacct -X -P -n")
    assert outcome.statuses["20"].state is JobState.TIMEOUT and not outcome.missing


def test_query_falls_back_when_accounting_is_disabled():
    run, calls = _fake_cluster([
        ("sacct", CommandResult(1, "", "sacct: error: Slurm accounting storage is disabled")),
        ("squeue", CommandResult(0, "7|7|a|FAILED|NonZeroExitCode\n8|8|b|RUNNING|None\n")),
        ("scontrol -o show job 7", CommandResult(0, "JobId=7 JobName=a JobState=FAILED ExitCode=3:0\n")),
        ("scontrol", CommandResult(1, "", "slurm_load_jobs error: Invalid job id specified")),
    ])
    outcome = run_query(["7", "8", "9"], run)
    assert not outcome.sacct_available
    assert outcome.statuses["7"].exit_code == 3 and outcome.statuses["8"].state is JobState.RUNNING
    assert outcome.missing == ["9"]
    assert [c.split()[0] for c in calls] == ["sacct", "squeue", "scontrol", "scontrol"]


def test_commands_quote_and_validate():
    assert commands.sacct(["1", "2_3"]) == \
        "sacct -X -P -n --format=JobIDRaw,JobID,JobName,State,ExitCode,Elapsed -j 1,2_3"
    assert commands.sbatch("/r/a b.sh".replace(" ", "_"), options={"time": "1:00:00"}) == \
        "sbatch --parsable --time=1:00:00 /r/a_b.sh"
    for bad in ("1;rm -rf /", "$(id)", "", "12_[1-3]"):
        with pytest.raises(ValueError):
            commands.scancel([bad])
    with pytest.raises(ValueError):
        commands.squeue_by_name("x; reboot")
    with pytest.raises(ValueError):
        commands.mkdir("/tmp/../etc")
    with pytest.raises(ValueError):
        commands.sbatch("relative.sh")
    cmd = commands.faxflow(["collect", "--variant", "a'b"], python_env="/opt/env", env_setup=["module load x"])
    assert cmd == "module load x && /opt/env/bin/faxflow collect --variant " + shlex.quote("a'b")
    assert len(commands.chunks([str(i) for i in range(450)])) == 3


def test_job_script():
    layout = RemoteLayout("/scratch/ff", "demo", "manual_1", "/scratch/ff/outputs")
    script = render_job_script(job_name="ff_demo_abcd1234_v1_g0003", group_index=7,
                               manifest_path="/scratch/ff/demo/manual_1/manifest/manifest-0123456789ab.json",
                               manifest_digest="0" * 64, layout=layout,
                               cluster={"partition": "xenon1t", "qos": "xenon1t",
                                                       "account": "pi-lgrandi", "mem_per_cpu_mb": 3000,
                                                       "time_limit_minutes": 90, "python_env": "/opt/ff",
                                                       "env_setup": ["module load python/3.11"]}, force=True)
    lines = script.splitlines()
    assert lines[0] == "#!/bin/bash"
    for expected in ("#SBATCH --job-name=ff_demo_abcd1234_v1_g0003", "#SBATCH --partition=xenon1t",
                     "#SBATCH --qos=xenon1t", "#SBATCH --account=pi-lgrandi", "#SBATCH --mem-per-cpu=3000",
                     "#SBATCH --time=1:30:00",
                     "#SBATCH --output=/scratch/ff/demo/manual_1/slurm/ff_demo_abcd1234_v1_g0003_%j.out",
                     "#SBATCH --error=/scratch/ff/demo/manual_1/slurm/ff_demo_abcd1234_v1_g0003_%j.err",
                     "module load python/3.11"):
        assert expected in lines
    assert lines[-1] == ("exec /opt/ff/bin/faxflow job --manifest /scratch/ff/demo/manual_1/manifest/"
                         "manifest-0123456789ab.json --digest " + "0" * 64
                         + " --group 7 --output-root /scratch/ff/outputs --force")
    assert lines.index("module load python/3.11") < len(lines) - 1
    # every job shares the cache that prepare warms; the campaign's setup lines come after and may override it
    assert lines.index("export FAXFLOW_KERNEL_CACHE=/scratch/ff/cache/kernels") < lines.index("module load python/3.11")
    odd = RemoteLayout("/scratch/f+f", "demo", "manual_1")
    assert f"export FAXFLOW_KERNEL_CACHE={shlex.quote('/scratch/f+f/cache/kernels')}" in render_job_script(
        job_name="j", group_index=0, manifest_path="/m.json", manifest_digest="0" * 64, layout=odd, cluster={})
    assert minutes_to_slurm(5) == "0:05:00" and minutes_to_slurm(1500) == "25:00:00"
    with pytest.raises(ValueError):
        render_job_script(job_name="bad name", group_index=0, manifest_path="/m.json", manifest_digest="0" * 64,
                          layout=layout, cluster={})


BOUNDS = Resources(time_limit_minutes=60, mem_per_cpu_mb=3000, max_time_limit_minutes=200, max_mem_per_cpu_mb=8000)


@pytest.mark.parametrize("state,code,action", [
    ("COMPLETED", 0, Action.SUCCEED),
    ("FAILED", 2, Action.FAIL), ("FAILED", 3, Action.FAIL), ("FAILED", 6, Action.FAIL),
    ("FAILED", 4, Action.RETRY), ("FAILED", 5, Action.RETRY), ("FAILED", 1, Action.RETRY),
    ("NODE_FAIL", 0, Action.RETRY), ("PREEMPTED", 0, Action.RETRY), ("BOOT_FAIL", 0, Action.RETRY),
    (LOST, None, Action.RETRY), ("CANCELLED", 0, Action.FAIL), ("DEADLINE", 0, Action.FAIL),
    ("TIMEOUT", 0, Action.RETRY_MORE_TIME), ("OUT_OF_MEMORY", 0, Action.RETRY_MORE_MEMORY),
])
def test_policy(state, code, action):
    assert decide(state, code, BOUNDS).action is action


def test_policy_bounds_growth():
    first = decide(JobState.TIMEOUT, 0, BOUNDS)
    assert first.time_limit_minutes == 120
    second = decide(JobState.TIMEOUT, 0, Resources(120, 3000, 200, 8000))
    assert second.time_limit_minutes == 200
    assert decide(JobState.TIMEOUT, 0, Resources(200, 3000, 200, 8000)).action is Action.FAIL
    assert decide(JobState.OUT_OF_MEMORY, 0, Resources(60, 6000, 200, 8000)).mem_per_cpu_mb == 8000
    assert decide(JobState.OUT_OF_MEMORY, 0, Resources(60, 8000, 200, 8000)).action is Action.FAIL
