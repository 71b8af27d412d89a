"""How a stage runs under Snakemake: thread counts fixed by the config, the environment recorded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from asvd.analysis.metrics import run_environment
from asvd.analysis.tables import environment_table
from asvd.pipeline.runtime import environment, job_threads
from conftest import task_log


@pytest.mark.parametrize("scheduled", [1, 2, 8])
def test_a_rules_threads_come_from_the_config_whatever_cores_snakemake_gives(scheduled):
    smk = SimpleNamespace(rule="finetune_task", threads=scheduled,
                          config={"threads": {"finetune_task": 2, "svd_cache": 1}})
    assert job_threads(smk) == 2
    # a rule the config does not fix (the cost benchmark) computes with what it was given
    assert job_threads(SimpleNamespace(rule="constraint_cost", threads=scheduled, config=smk.config)) == scheduled


def test_the_stage_sets_torch_threads_before_torch_starts(tmp_path):
    """In a fresh process (as Snakemake starts a script job) torch computes with the config's
    count, not the scheduler's nor the one inherited from the environment."""
    code = (
        "from types import SimpleNamespace\n"
        "from asvd.pipeline.runtime import stage\n"
        f"smk = SimpleNamespace(rule='svd_cache', threads=2, log=[{str(tmp_path / 'job.log')!r}],"
        " config={'threads': {'svd_cache': 1}})\n"
        "with stage(smk):\n"
        "    import torch\n"
        "    print('threads', torch.get_num_threads())\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert "threads 1" in (tmp_path / "job.log").read_text()


def test_the_environment_names_versions_threads_cpu_and_gpu(tmp_path):
    env = environment()
    assert env["packages"]["torch"] and env["packages"]["transformers"] and env["cpu"]
    assert env["torch_threads"] >= 1 and "gpu" in env
    logs = []
    for step, threads in enumerate([1, 1, 2], start=1):
        logs.append(tmp_path / f"log{step}.json")
        logs[-1].write_text(json.dumps(task_log(environment={**env, "torch_threads": threads})))
    assert run_environment(logs[:2]) == {**env, "torch_threads": 1}
    assert [e["torch_threads"] for e in run_environment(logs)] == [1, 2]  # distinct ones, in order
    summaries = []
    for i, recorded in enumerate([run_environment(logs[:2]), run_environment(logs[:2]), None]):
        summaries.append(tmp_path / f"summary{i}.json")
        summaries[-1].write_text(json.dumps({"environment": recorded}))
    table = environment_table(summaries)
    assert table["runs"].tolist() == [2] and table["torch_threads"].tolist() == [1]
    assert table["torch"].tolist() == [env["packages"]["torch"]]


def _wait_for(condition, seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_a_job_ends_when_the_snakemake_that_started_it_is_killed(tmp_path):
    """A stand-in Snakemake starts a job through a shell (as Snakemake does), the job starts a
    worker of its own; SIGKILL reaches the stand-in alone: the job and its worker end within
    seconds instead of writing on beside the rerun the user starts next."""
    import signal

    import psutil

    job = tmp_path / "job.py"
    job.write_text(
        "import subprocess, sys, time\n"
        "from asvd.pipeline.runtime import die_with_snakemake\n"
        "die_with_snakemake(interval=0.05)\n"
        "worker = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(tmp_path / 'pids')!r}, 'w').write(f'{{__import__(\"os\").getpid()}} {{worker.pid}}')\n"
        "time.sleep(120)\n")
    stand_in = tmp_path / "snakemake"  # its command line names snakemake, as the real one's does
    stand_in.write_text("import subprocess, sys, time\n"
                        f"subprocess.Popen(['bash', '-c', f'{{sys.executable}} {job}; true'])\n"
                        "time.sleep(120)\n")
    snakemake = subprocess.Popen([sys.executable, str(stand_in)], start_new_session=True,
                                 env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        assert _wait_for(lambda: (tmp_path / "pids").is_file() and (tmp_path / "pids").read_text(), 60)
        pids = [int(pid) for pid in (tmp_path / "pids").read_text().split()]
        assert all(psutil.pid_exists(pid) for pid in pids)
        os.kill(snakemake.pid, signal.SIGKILL)
        snakemake.wait()

        def ended(pid: int) -> bool:
            try:
                return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        assert _wait_for(lambda: all(ended(pid) for pid in pids), 15), pids
    finally:
        os.killpg(snakemake.pid, signal.SIGKILL)


def test_a_stage_outside_snakemake_starts_no_watch():
    import threading

    from asvd.pipeline.runtime import die_with_snakemake

    die_with_snakemake()
    assert "die-with-snakemake" not in {thread.name for thread in threading.enumerate()}
