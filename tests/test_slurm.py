"""The tiny study submitted to a real one-node SLURM cluster (controller and node daemon on
loopback, CPUs only) through profiles/slurm gives the same accuracy matrices as a local
run of the same config."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO, learned_files, run_snakemake
from test_workflow import e2e  # noqa: F401  (the fixture: the tiny study run locally)

CONF = Path("/etc/slurm/slurm.conf")
MARKER = "# written by asvd's test suite"
RUNS = [("seqft", 1), ("asvd", 1)]


def cluster_conf(state: Path) -> str:
    host = socket.gethostname()
    memory_mb = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 * 8 // 10
    return f"""{MARKER}
ClusterName=asvdtest
SlurmctldHost={host}(127.0.0.1)
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SlurmUser=root
SlurmdUser=root
SlurmctldPidFile={state}/slurmctld.pid
SlurmdPidFile={state}/slurmd.pid
SlurmdSpoolDir={state}/slurmd
StateSaveLocation={state}/slurmctld
SlurmctldLogFile={state}/slurmctld.log
SlurmdLogFile={state}/slurmd.log
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=3600
MpiDefault=none
NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory={memory_mb} State=UNKNOWN
PartitionName=asvd Nodes={host} Default=YES MaxTime=INFINITE State=UP
"""


def cannot_start(reason: str) -> None:
    """Skip, saying why; fail instead where .ci/run installed SLURM (ASVD_REQUIRE_SLURM=1)."""
    if os.environ.get("ASVD_REQUIRE_SLURM") == "1":
        pytest.fail(f"ASVD_REQUIRE_SLURM=1 but the test cluster cannot start: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """Start munge, slurmctld and slurmd for this module; stop them and remove the config after."""
    if os.geteuid() != 0:
        cannot_start("starting slurmctld/slurmd needs root")
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo")
               if shutil.which(tool) is None]
    if missing:
        cannot_start(f"SLURM is not installed ({missing}; apt-get install slurm-wlm munge)")
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        cannot_start("snakemake-executor-plugin-slurm is not installed (pip install -e '.[cluster]')")
    if CONF.exists() and MARKER not in CONF.read_text():
        cannot_start(f"{CONF} belongs to a real cluster; not replacing it")
    state = tmp_path_factory.mktemp("slurm")
    for sub in ("slurmd", "slurmctld"):
        (state / sub).mkdir()
    CONF.parent.mkdir(parents=True, exist_ok=True)
    CONF.write_text(cluster_conf(state))
    started_munge = subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0
    if started_munge:
        Path("/run/munge").mkdir(parents=True, exist_ok=True)
        if not Path("/etc/munge/munge.key").exists():  # normally made by the package's postinst
            subprocess.run(["mungekey", "--create"], check=True)
        subprocess.run(["munged", "--force"], check=True)
    subprocess.run(["slurmctld"], check=True)
    subprocess.run(["slurmd"], check=True)
    deadline = time.monotonic() + 60
    while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True,
                                       text=True).stdout:
        if time.monotonic() > deadline:
            pytest.fail(f"the test cluster did not come up:\n{(state / 'slurmctld.log').read_text()[-2000:]}")
        time.sleep(1)
    yield {"ASVD_SLURM_ACCOUNT": "root", "ASVD_SLURM_PARTITION": "asvd"}
    pid_files = [state / "slurmd.pid", state / "slurmctld.pid"]
    if started_munge:
        pid_files.append(Path("/run/munge/munged.pid"))
    pids = [int(path.read_text()) for path in pid_files if path.exists()]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.5)
    CONF.unlink(missing_ok=True)


@pytest.mark.long(2)
def test_the_tiny_study_through_slurm_matches_a_local_run(slurm_cluster, e2e, tmp_path, monkeypatch):  # noqa: F811
    """The end-to-end tiny study again, every job through sbatch: the same weights and matrices
    as its local run (the ``e2e`` fixture's)."""
    cluster = tmp_path / "cluster"
    cluster.mkdir()
    for key, value in slurm_cluster.items():
        monkeypatch.setenv(key, value)
    # the profile's first status check waits 40 s, right for a busy cluster; seconds suffice here
    result = run_snakemake(cluster, "all_figures", "--workflow-profile",
                           str(REPO / "profiles" / "slurm"),
                           "--slurm-init-seconds-before-status-checks", "2",
                           configfiles=[e2e.configfile], timeout=1800)
    assert "external_jobid" not in result.stderr  # no job failed and was retried
    # the jobs really went through sbatch: 4 trainings among the submissions
    log = result.stdout + result.stderr
    submitted = [line for line in log.splitlines() if "has been submitted with SLURM jobid" in line]
    assert sum("rule_finetune_task" in line for line in submitted) == 4, log[-3000:]
    learned = learned_files(e2e.results)
    assert sum(name.endswith("accuracy_matrix.csv") for name in learned) == len(RUNS)
    assert learned_files(cluster / "results" / e2e.config["experiment"]) == learned
