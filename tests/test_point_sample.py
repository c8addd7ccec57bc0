"""Target sampling of matches laid out per target (target_layout +
sample_by_target) against sampling each match on its own."""
import numpy as np
import torch

from m2f_mm.models.utils.point_sample import (point_sample, sample_targets,
                                              target_layout)


def test_target_layout_slots_and_ranks():
    used, slot, rank, width = target_layout(np.array([3, 1, 3, 3, 0, 1]))
    assert used.tolist() == [0, 1, 3]
    assert slot.tolist() == [2, 1, 2, 2, 0, 1]
    assert rank.tolist() == [0, 0, 1, 2, 0, 1]  # order among a target's matches
    assert width == 3
    empty = target_layout(np.zeros(0, np.int64))
    assert empty[0].size == 0 and empty[3] == 0


def test_sample_targets_equals_one_match_at_a_time():
    g = torch.Generator().manual_seed(0)
    masks = torch.rand(5, 12, 9, generator=g) > 0.5
    gt_idx = torch.tensor([4, 0, 4, 2, 4, 0])
    coords = torch.rand(6, 30, 2, generator=g)
    got = sample_targets(masks, gt_idx, coords)
    want = torch.stack([point_sample(masks[t][None, None].float(), coords[m][None])[0, 0]
                        for m, t in enumerate(gt_idx.tolist())])
    assert torch.equal(got, want)
