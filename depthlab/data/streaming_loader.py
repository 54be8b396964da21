"""litdata's ``StreamingDataLoader`` as the training loader of :mod:`depthlab.data.streaming`, with one
fix for its resume under Lightning (imported only where litdata is installed)."""

from __future__ import annotations

from typing import Any, Iterator

from litdata import StreamingDataLoader

from depthlab.data.pack import warn_if_elastic


class PackLoader(StreamingDataLoader):
    """``StreamingDataLoader`` whose restored position serves one epoch only.

    ``load_state_dict`` sets the loader's ``restore`` flag, so that its next ``__iter__`` continues the
    interrupted epoch instead of starting one; litdata clears the flag only when that iteration runs
    to exhaustion. Lightning never exhausts it: it stops an epoch after ``len(loader)`` batches. So
    after a mid-epoch resume every following ``__iter__`` kept "restoring" the finished epoch and
    yielded nothing: the run's later epochs were empty (litdata 0.2.76; the same flag in litData
    issues #760/#770 and pull request #851). Here the flag is cleared when a new iteration starts
    after the restored one has yielded a batch; an iteration abandoned before its first batch still
    leaves the position to the next one, as litdata intends.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._restored_epoch_started = False

    def load_state_dict(self, obj: dict[str, Any]) -> None:
        warn_if_elastic(obj.get("dataset") or {}, self.batch_size or 1, self.num_workers)
        super().load_state_dict(obj)
        self._restored_epoch_started = False

    def __iter__(self) -> Iterator[Any]:
        if self.restore and self._restored_epoch_started:
            self.restore = False  # the restored epoch was trained on: this is the next one
        restoring = self.restore
        for batch in super().__iter__():
            if restoring:
                self._restored_epoch_started = True
            yield batch

