"""The benchmark's seeded synthetic batch, and HF's targets for it."""
from typing import List, Tuple

import numpy as np
import torch

from . import NUM_STUFF, NUM_THINGS


def synthetic_batch(size: int, batch: int, seed: int = 0, num_things: int = 10,
                    num_stuff: int = 5, device: str = 'cpu'):
    """Normalised-looking inputs (B, 3, size, size) and MMDet data samples.

    Each image has ``num_stuff`` stuff classes as vertical bands and
    ``num_things`` thing ellipses on top of them; ``gt_sem_seg`` holds the
    thing and stuff labels of every pixel, as MMDet's panoptic loading does.
    The batch is drawn on the CPU (the same on every device), then moved.
    """
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData, PixelData

    rng = np.random.RandomState(seed)
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(batch, 3, size, size, generator=g)
    yy, xx = np.mgrid[:size, :size]
    samples = []
    for i in range(batch):
        sem = np.empty((size, size), np.int64)
        bands = np.linspace(0, size, num_stuff + 1).astype(int)
        stuff = rng.choice(NUM_STUFF, num_stuff, replace=False) + NUM_THINGS
        for k in range(num_stuff):
            sem[:, bands[k]:bands[k + 1]] = stuff[k]
        masks = np.zeros((num_things, size, size), np.uint8)
        labels = rng.randint(0, NUM_THINGS, num_things)
        for k in range(num_things):
            cy, cx = rng.uniform(0.1, 0.9, 2) * size
            ry, rx = rng.uniform(0.03, 0.15, 2) * size
            inside = ((yy - cy) / ry)**2 + ((xx - cx) / rx)**2 <= 1
            masks[:k, inside] = 0  # later things occlude earlier ones
            masks[k, inside] = 1
            sem[inside] = labels[k]
        sample = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size), pad_shape=(size, size),
            batch_input_shape=(size, size), scale_factor=(1.0, 1.0),
            img_path=f'synthetic_{seed}_{i}.png'))
        sample.gt_instances = InstanceData(
            labels=torch.from_numpy(labels).long(),
            masks=BitmapMasks(masks, size, size),
            bboxes=torch.zeros(num_things, 4))
        sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
        samples.append(sample.to(device))
    return inputs.to(device), samples


def hf_targets(samples, device='cpu'
               ) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
    """HF's (mask_labels, class_labels) on ``device``: things then stuff, as
    in MMDet. Built on the CPU, where the masks are (``BitmapMasks`` are
    NumPy), whatever device the samples' tensors are on."""
    from m2f_mm.models.utils.targets import ClassCounts, mask_targets
    masks, labels = [], []
    for s in samples:
        thing = s.gt_instances.masks.to_tensor(torch.bool, 'cpu')
        lab, m = mask_targets(s.gt_instances.labels.cpu(), thing,
                              s.gt_sem_seg.sem_seg[0].cpu(),
                              ClassCounts(NUM_THINGS, NUM_STUFF))
        masks.append(m.float().to(device))
        labels.append(lab.to(device))
    return masks, labels
