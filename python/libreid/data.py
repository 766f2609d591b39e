"""LibReID's datasets, samplers and threaded loader as an iterable of batches for a Python
training loop (see `DataLoader`)."""

from __future__ import annotations

import numbers
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

import torch

from . import _core
from .jobs import PathLike, _config, _overrides


class Batch(NamedTuple):
    """One batch: ``images`` float32 [B, 3, H, W] normalised as the config says ([B, T, 3, H, W]
    clips for video datasets), ``pids`` and ``camids`` int64 [B]."""
    images: torch.Tensor
    pids: torch.Tensor
    camids: torch.Tensor


class DataLoader:
    """A config's data through LibReID's loader: worker threads decode and augment whole batches
    into one tensor, outside the GIL, so a plain PyTorch loop can consume them.

    ``split="train"``: the merged data.sources training set (identities relabelled 0..N-1), batched
    by the config's sampler (sampler.name: P x K identities or random) and augmented by its
    transforms; epoch ``e`` gives exactly the batches reid-train trains on in epoch e + 1 (same
    sampler plan and augmentation seeds, one process). ``split="query"`` / ``"gallery"``: a test
    set's split (``dataset``, default the first of data.targets) in order, with the test
    transform, in batches of test.batch_size (raw identities and cameras).

    Video datasets give [B, T, 3, H, W] clips of data.seq_len frames (data.train_sampling for
    training, data.test_sampling for the test splits, where "all" gives one evenly spaced clip).

    Iterating gives `Batch` tuples ``(images, pids, camids)`` of the current epoch, which then
    advances (``set_epoch`` chooses it, as torch's DistributedSampler). ``workers``: loader threads
    (default: data.workers, or the machine's choice when that is 0).
    """

    def __init__(self, config: Optional[PathLike] = None, overrides: Sequence[str] = (), *, split: str = "train",
                 dataset: Optional[str] = None, workers: Optional[int] = None,
                 output_dir: Optional[PathLike] = None, device: Optional[str] = None):
        if split not in ("train", "query", "gallery"):
            raise ValueError(f"split: expected train, query or gallery, got {split!r}")
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, numbers.Integral)
                                    or workers < 0):
            raise ValueError(f"workers: expected an integer >= 0, got {workers!r}")
        self.split = split
        self._epoch = 0
        self._records: Optional[List[Tuple[str, int, int]]] = None
        self._core = _core.DataLoader(_config(config), _overrides(overrides, output_dir, device), split,
                                      dataset or "", -1 if workers is None else int(workers))

    def set_epoch(self, epoch: int) -> None:
        """The epoch (0-based) the next iteration gives: the sampler's plan and the augmentation
        seeds follow it."""
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch: expected an integer >= 0, got {epoch!r}")
        self._epoch = int(epoch)

    @property
    def epoch(self) -> int:
        return self._epoch

    def __iter__(self) -> Iterator[Batch]:
        epoch = self._epoch
        # Training advances to the next epoch once this one is started; a loop that breaks off
        # and iterates again gets the next epoch, as the batches left are dropped.
        if self.split == "train":
            self._epoch += 1
        self._core.start(epoch)
        while True:
            batch = self._core.next()
            if batch is None:
                return
            yield Batch(batch[0], batch[1], batch[2])

    def __len__(self) -> int:
        """Batches in the current epoch."""
        return len(self._core.plan(self._epoch))

    def plan(self, epoch: Optional[int] = None) -> List[List[int]]:
        """The record indices of each batch of ``epoch`` (default: the current one)."""
        return self._core.plan(self._epoch if epoch is None else int(epoch))

    @property
    def batch_size(self) -> int:
        return self._core.batch_size

    @property
    def records(self) -> List[Tuple[str, int, int]]:
        """(path, pid, camid) of every image (a tracklet's first frame), in record order."""
        if self._records is None:
            self._records = [tuple(r) for r in self._core.records]
        return self._records

    @property
    def num_classes(self) -> int:
        """Identities of the split (training: the number of classes a classifier needs)."""
        return len({pid for _, pid, _ in self.records})

    @property
    def num_cameras(self) -> int:
        return len({camid for _, _, camid in self.records})

    @property
    def skipped(self) -> int:
        """Images left out as unreadable so far (data.skip_bad_images)."""
        return self._core.skipped

    def __repr__(self) -> str:
        return (f"libreid.DataLoader({self.split}: {len(self.records)} images, {self.num_classes} identities, "
                f"batches of {self.batch_size}, epoch {self._epoch})")
