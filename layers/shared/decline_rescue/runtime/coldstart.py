"""The end of a function's init phase: ``init_done()``, the last line of every handler
module.

What the init phase built (the modules imported, the settings and routes) lives as long
as the execution environment, yet Python's cyclic garbage collector walks all of it in
every full collection, and the first full collection tends to fall in the first event:
20 to 45 ms of a cold start (``bench/cold_start.py``). ``gc.freeze()`` moves what exists
now out of the collector's way for good; what invocations allocate is collected as usual.
Once per process: a process that loads handlers again and again (tests, the local
stack's benchmarks) freezes its start-up only.
"""

from __future__ import annotations

import gc


def init_done() -> None:
    if gc.get_freeze_count() == 0:
        gc.freeze()
