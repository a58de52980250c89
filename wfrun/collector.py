"""The cyclic garbage collector while wfrun starts.

Starting wfrun creates a few hundred thousand objects that live as long as the process (modules,
classes, functions, the methods dataclasses generate), and the collector, run every few hundred
allocations, walks them again and again: about 20 ms of CPU for a one-step run, as much as the
run's own work. So `wfrun.__main__` pauses it before importing anything, and a command resumes
it where its long work begins, after moving everything made so far into the permanent
generation (gc.freeze), which no collection walks again: `run` before the run starts,
`validate` before its first file. `plan` and `schema` do not resume it: they load one file at
most, which the loader does with the collector paused anyway (yaml_source.gc_paused), and exit.
Used in-process (wfrun.cli.app, the API), wfrun never pauses the collector.
"""

from __future__ import annotations

import gc


def pause() -> None:
    """Start-up begins: no collections until `resume`."""
    gc.disable()


def resume() -> None:
    """Start-up is over: what it made is kept out of every later collection, which resumes."""
    gc.freeze()
    gc.enable()
