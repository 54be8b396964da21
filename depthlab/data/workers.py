"""DataLoader worker processes: how they start, and how they end when a run fails or exits.

- Workers ignore SIGINT and SIGTERM (:func:`worker_init_fn`): a signal to the whole process group
  (``scancel``, Ctrl+C in a terminal) otherwise kills them first and the main process dies on
  "DataLoader worker killed by signal" instead of stopping at the end of its step
  (``depthlab.checkpointing.preemption``); ignored, they are shut down by the main process.
- The main process shuts them down when a run fails (:func:`shutdown_workers`, called by the data
  module's ``on_exception``/``teardown``): persistent workers otherwise outlive the failed run, held
  by the loader.
- A worker that ignores SIGTERM cannot be ended by ``multiprocessing``'s own clean-up at exit (it
  sends SIGTERM, then waits for ever), so the first loader with workers installs an exit handler
  (:func:`install_exit_cleanup`) that SIGKILLs those left first. Nothing happens at import.
"""

from __future__ import annotations

import atexit
import multiprocessing.util  # noqa: F401  (imported, its exit handler registered, before ours: ours runs first)
import os
import signal
import threading
from typing import Any

from lightning.fabric.utilities.seed import pl_worker_init_function

_CAN_SEE_IGNORED_SIGNALS = os.path.exists("/proc/self/status")
_exit_cleanup_installed = False


def worker_init_fn(worker_id: int) -> None:
    """Workers ignore SIGINT and SIGTERM; the main process stops them (see the module docstring).

    Setting a ``worker_init_fn`` stops Lightning from adding its own, so its per-worker seeding
    (``seed_everything(workers=True)``, which LightningCLI uses) is called from here.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if _CAN_SEE_IGNORED_SIGNALS:  # else the exit clean-up below could not find this worker
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id)


def shutdown_workers(loader: Any) -> None:
    """End the worker processes a DataLoader keeps (persistent workers), as Lightning does for its
    own loaders (``combined_loader._shutdown_workers_and_reset_iterator``)."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
        loader._iterator = None


def _ignores_sigterm(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("SigIgn:"):
                    return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return False


def _kill_workers_ignoring_sigterm() -> None:
    """At exit, SIGKILL the daemonic children that ignore SIGTERM (workers whose loader was never shut
    down), all of them before waiting for any.

    torch's SIGCHLD handler raises "DataLoader worker ... is killed by signal" in the main thread
    when one of its workers dies by a signal; raised in here, it would stop the loop with the other
    workers alive and ``multiprocessing``'s exit handler would then wait for them for ever. So the
    handler is put back to the default first.
    """
    import multiprocessing

    children = [c for c in multiprocessing.active_children()
                if c.daemon and c.pid is not None and _ignores_sigterm(c.pid)]
    if not children:
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in children:
        child.kill()
    for child in children:
        child.join(timeout=5)


def install_exit_cleanup() -> None:
    """Register :func:`_kill_workers_ignoring_sigterm` at exit (once). Registered after
    ``multiprocessing``'s own exit handler, so it runs before it (atexit is last in, first out)."""
    global _exit_cleanup_installed
    if not _exit_cleanup_installed:
        atexit.register(_kill_workers_ignoring_sigterm)
        _exit_cleanup_installed = True
