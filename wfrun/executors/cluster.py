"""Choosing where steps run: this machine, or a Dask cluster (SPEC §9).

Nothing here imports dask: the `dask` extra may be absent, and a local run must not pay for it.
`dask_executor` imports `wfrun.executors.dask_runner` (and through it dask) only when asked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from wfrun.errors import WfrunError
from wfrun.executors.routing import TypedExecutor

INSTALL_HINT = "pip install 'wfrun[dask]'"
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to reach an existing scheduler
DEFAULT_THREADS = 8  # per worker of a local cluster, when nobody says
WORKERS_PER_CPU = 4  # the most workers of a local cluster, per CPU of this machine


@dataclass(frozen=True, slots=True)
class DaskOptions:
    """Which cluster: an existing scheduler's address, or a local cluster of this shape.

    A local cluster runs its workers as threads of this process; each worker thread carries one
    step at a time, so `workers * threads` should be at least the run's cap (the CLI sees to it).
    """

    scheduler: str | None = None  # e.g. tcp://10.0.0.5:8786; None: start a local cluster
    workers: int = 1
    threads: int = DEFAULT_THREADS
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT


def max_local_workers() -> int:
    """The most workers a local cluster may have: each is a Dask server with an event loop and
    threads of its own in wfrun's process, and many thousands never finish starting."""
    return WORKERS_PER_CPU * (os.cpu_count() or 1)


class DaskSetupError(WfrunError):
    """The Dask executor cannot be used: dask is not installed, or the scheduler is unreachable."""


def dask_executor(options: DaskOptions | None = None) -> TypedExecutor:
    """Script and agent steps run on a Dask cluster; wfrun keeps scheduling (pools, caps).

    Connects (or starts the local cluster) now, so that an unreachable scheduler is known before
    anything runs; the executor's `close()` (the scheduler calls it at the end of the run)
    disconnects and stops a local cluster. Raises DaskSetupError.
    """
    options = options or DaskOptions()
    if options.scheduler is None and options.workers > max_local_workers():
        raise DaskSetupError(
            f"--dask-workers {options.workers} is more than a local cluster on this machine "
            f"takes: at most {max_local_workers()} ({WORKERS_PER_CPU} per CPU); for more "
            "steps at once give each worker more --dask-threads, or run a cluster and use "
            "--scheduler"
        )
    try:
        from wfrun.executors import dask_runner
    except ImportError as exc:
        if exc.name is not None and exc.name.split(".")[0] in ("dask", "distributed"):
            raise DaskSetupError(
                f"--executor dask needs dask and distributed, which are not installed: "
                f"{INSTALL_HINT}"
            ) from None
        raise
    from wfrun.executors.routing import default_executor

    return default_executor(dask_runner.connect(options))
