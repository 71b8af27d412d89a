"""Run a stage under Snakemake: route output to the rule's log and honour its thread count."""

from __future__ import annotations

import contextlib
import importlib.metadata
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Iterator


def job_threads(smk) -> int:
    """The threads a job computes with: ``threads.<rule>`` of the config where the study fixes
    it, so results never depend on ``--cores`` (Snakemake scales a rule's ``threads`` down to
    fit it, and e.g. ``torch.linalg.svd`` differs bitwise between 1 and 2 threads); else the
    scheduler's count (the cost benchmark, which is meant to use what it is given)."""
    fixed = (smk.config.get("threads") or {}).get(smk.rule)
    return max(1, int(fixed if fixed is not None else smk.threads))


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


ENVIRONMENT_PACKAGES = ("torch", "transformers", "accelerate", "peft", "safetensors", "numpy",
                        "datasets", "tokenizers", "pandas", "snakemake")


def environment() -> dict:
    """What a result may depend on besides config and code: package versions, the threads torch
    computes with, the CPU model and the GPU (None on CPU)."""
    import torch

    versions = {}
    for package in ENVIRONMENT_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "python": platform.python_version(),
        "packages": versions,
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def compute_device():
    """Where a single-process stage (SVD, evaluation) runs: the job's first GPU if any, else CPU.
    Training places itself (accelerate, :mod:`asvd.train.parallel`)."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _snakemake_ancestor():
    """The nearest ancestor process running Snakemake (``snakemake ...`` or ``python -m
    snakemake ...``), or None when the job was not started by one."""
    import psutil

    for parent in psutil.Process().parents():
        try:
            if any(Path(part).name == "snakemake" for part in parent.cmdline()[:3]):
                return parent
        except psutil.Error:
            continue
    return None


def die_with_snakemake(interval: float = 1.0) -> None:
    """End this job (and what it started) once the Snakemake process that started it is gone.

    A SIGKILLed Snakemake cannot stop its jobs, and a job left running would still be writing
    its output when the user reruns the workflow (after ``--unlock``), which starts a second
    writer of the same output. A daemon thread looks every ``interval`` seconds; outputs are
    written atomically and training resumes from its last saved step, so ending at any moment
    loses nothing.
    """
    ancestor = _snakemake_ancestor()
    if ancestor is None:
        return

    def watch() -> None:
        import psutil

        while ancestor.is_running():
            time.sleep(interval)
        logging.getLogger("asvd").error(
            "the Snakemake process that started this job (pid %d) is gone: stopping, so a rerun "
            "meets no second writer", ancestor.pid)
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):
                child.kill()
        os._exit(75)  # EX_TEMPFAIL: try again

    threading.Thread(target=watch, name="die-with-snakemake", daemon=True).start()


@contextlib.contextmanager
def stage(smk) -> Iterator[None]:
    """Send stdout/stderr and logging to ``smk.log[0]``; cap math libraries at
    :func:`job_threads`.

    The thread variables are set before torch is first imported (inside the ``with`` body), which
    is when torch reads them; light stages such as plots never pay for importing torch.
    Progress bars land in the log too, so a user can ``tail -f`` a running job. The file
    descriptors are redirected as well, so the log also gets what native code and the processes
    a stage starts (data-parallel training) write.
    """
    die_with_snakemake()
    threads = job_threads(smk)
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(threads)
    if "torch" in sys.modules:  # already imported: the variables came too late for it
        sys.modules["torch"].set_num_threads(threads)
    log_path = smk.log[0] if smk.log else os.devnull
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    sys.stdout.flush(), sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_path, "w", encoding="utf-8", buffering=1) as handle, \
            contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
        os.dup2(handle.fileno(), 1), os.dup2(handle.fileno(), 2)
        logging.basicConfig(stream=handle, level=logging.INFO, force=True,
                            format="%(asctime)s %(name)s %(levelname)s %(message)s")
        try:
            yield
        except Exception:
            logging.getLogger("asvd").exception("stage failed")
            raise
        finally:
            handle.flush()
            for fd, original in zip((1, 2), saved):
                os.dup2(original, fd)
                os.close(original)
