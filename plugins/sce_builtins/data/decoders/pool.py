"""One lazily created, fork-safe thread pool per decoder per process."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class LazyThreadPool:
    """A ``ThreadPoolExecutor`` created on first use and recreated after ``fork``.

    With ``num_threads <= 1`` no pool exists and :meth:`map` runs inline (the fastest choice on
    one core with a warm page cache). The pool is dropped when pickled (spawned DataLoader
    workers build their own).

    Args:
        num_threads: worker threads; 0 or 1 runs tasks in the calling thread.
    """

    def __init__(self, num_threads: int = 0) -> None:
        self.num_threads = int(num_threads)
        self._pool: ThreadPoolExecutor | None = None
        self._pid: int | None = None
        self.created = 0  # pools created so far in this process (for tests)

    def _executor(self) -> ThreadPoolExecutor:
        pid = os.getpid()
        if self._pool is None or self._pid != pid:
            # After fork the parent's threads do not exist in the child: never reuse its pool.
            self._pool = ThreadPoolExecutor(self.num_threads, thread_name_prefix="sce-decode")
            self._pid = pid
            self.created += 1
        return self._pool

    def map(self, fn: Callable[[Any], Any], items: Iterable[Any]) -> list[Any]:
        """Apply ``fn`` to every item (in parallel when a pool is used); re-raises the first error."""
        items = list(items)
        if self.num_threads <= 1 or len(items) <= 1:
            return [fn(item) for item in items]
        return list(self._executor().map(fn, items))

    def shutdown(self) -> None:
        """Stop the pool of this process, if any."""
        if self._pool is not None and self._pid == os.getpid():
            self._pool.shutdown(wait=False)
        self._pool = None
        self._pid = None

    def __getstate__(self) -> dict[str, Any]:
        return {"num_threads": self.num_threads, "_pool": None, "_pid": None, "created": 0}
