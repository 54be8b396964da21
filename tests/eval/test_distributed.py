"""Zero weight for the repeats of a padding DistributedSampler: every index counted exactly once."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from depthlab.eval.distributed import loader_sampler, real_sample_mask


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 23), world=st.integers(1, 5), batch=st.integers(1, 4), shuffle=st.booleans())
def test_every_index_counted_once_on_any_number_of_ranks(n, world, batch, shuffle):
    counted, batches_per_rank = Counter(), set()
    for rank in range(world):
        sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=shuffle, seed=3)
        seen, n_batches = 0, 0
        for indices in BatchSampler(sampler, batch, drop_last=False):
            real = real_sample_mask(rank, world, n, seen, len(indices))
            counted.update(i for i, keep in zip(indices, real.tolist()) if keep)
            seen += len(indices)
            n_batches += 1
        batches_per_rank.add(n_batches)
    assert counted == Counter(range(n))
    assert len(batches_per_rank) == 1  # every rank runs the same batches: no collective waits


def test_loader_sampler_finds_the_distributed_sampler():
    data = list(range(5))
    sampler = DistributedSampler(data, num_replicas=2, rank=1, shuffle=False)
    assert loader_sampler(DataLoader(data, batch_size=2, sampler=sampler)) is sampler
    assert loader_sampler(DataLoader(data, batch_size=2)) is None
    assert real_sample_mask(1, 2, 5, 2, 1).tolist() == [False]  # rank 1's third sample repeats index 0
