"""Run a stage under Snakemake: route output to the rule's log and honour its thread count."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Iterator


@contextlib.contextmanager
def stage(smk) -> Iterator[None]:
    """Send stdout/stderr and logging to ``smk.log[0]``; cap math libraries at ``smk.threads``.

    The thread variables are set before torch is first imported (inside the ``with`` body), which
    is when torch reads them; light stages such as plots never pay for importing torch.
    Progress bars land in the log too, so a user can ``tail -f`` a running job. The file
    descriptors are redirected as well, so the log also gets what native code and the processes
    a stage starts (data-parallel training) write.
    """
    for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[variable] = str(max(1, int(smk.threads)))
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
