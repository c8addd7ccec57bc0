"""Synthetic MMDet samples with things, stuff and void, for head tests."""
import numpy as np
import torch
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from mmengine.structures import InstanceData, PixelData


def make_sample(h, w, num_things_classes=3, num_stuff_classes=2, num_things=3,
                seed=0, pad_shape=None, with_sem=True, empty=False):
    """A sample with ``num_things`` rectangles over stuff bands.

    Masks are at ``pad_shape`` (default: (h, w)), as DetDataPreprocessor
    pads them; ``empty`` gives no things and an all-void semantic map.
    """
    rng = np.random.RandomState(seed)
    ph, pw = pad_shape or (h, w)
    sem = np.full((ph, pw), 255, dtype=np.int64)
    if not empty:
        bands = np.linspace(0, h, num_stuff_classes + 1).astype(int)
        for k in range(num_stuff_classes):
            sem[bands[k]:bands[k + 1], :w] = num_things_classes + k
    masks, labels = [], []
    for _ in range(0 if empty else num_things):
        y0, x0 = rng.randint(0, h // 2), rng.randint(0, w // 2)
        y1, x1 = y0 + rng.randint(4, h // 2), x0 + rng.randint(4, w // 2)
        m = np.zeros((ph, pw), dtype=np.uint8)
        m[y0:y1, x0:x1] = 1
        sem[m.astype(bool)] = rng.randint(0, num_things_classes)  # thing pixels
        masks.append(m)
        labels.append(rng.randint(0, num_things_classes))
    inst = InstanceData(
        labels=torch.tensor(labels, dtype=torch.long),
        masks=BitmapMasks(np.stack(masks) if masks else
                          np.zeros((0, ph, pw), np.uint8), ph, pw),
        bboxes=torch.zeros((len(labels), 4)))
    sample = DetDataSample(metainfo=dict(
        img_shape=(h, w), ori_shape=(h, w), pad_shape=(ph, pw),
        batch_input_shape=(ph, pw), img_path=f'synthetic_{seed}.png'))
    sample.gt_instances = inst
    if with_sem:
        sample.gt_sem_seg = PixelData(sem_seg=torch.from_numpy(sem)[None])
    return sample


class RandRecorder:
    """Records every ``torch.rand`` draw made inside the ``with`` block.

    Every draw is made on the CPU, from the global CPU generator (or the
    ``generator`` passed, on its device), then moved to the device asked
    for: a CUDA Philox stream drawn in several calls is not one long draw,
    the CPU generator's stream is, so the draws stay a replayable stream
    (``torch.rand(n, generator=torch.Generator().manual_seed(seed))``) on
    every device. ``draws`` holds them as drawn, on the CPU.
    """

    def __init__(self):
        self.draws = []

    def __enter__(self):
        self._orig = torch.rand

        def rand(*size, generator=None, device=None, requires_grad=False,
                 **kwargs):
            where = generator.device if generator is not None else 'cpu'
            drawn = self._orig(*size, generator=generator, device=where, **kwargs)
            self.draws.append(drawn.clone())
            target = torch.get_default_device() if device is None else device
            return drawn.to(target).requires_grad_(requires_grad)
        torch.rand = rand
        return self

    def __exit__(self, *exc):
        torch.rand = self._orig


def losses_with_same_points(ref, ours, inputs, samples, seed=1234):
    """Both models' losses on the same random points.

    MMDet's head draws its points from torch's global RNG, ours from its
    criterion's generator, in the same order (see ``Mask2FormerCriterion``):
    seeding both alike replays MMDet's points in ours. MMDet's draws are
    made on the CPU by :class:`RandRecorder` (on a GPU too) and checked to be
    exactly the CPU generator's stream, which ours replays from a CPU
    generator (its criterion moves the points to the masks' device).
    """
    torch.manual_seed(seed)
    with RandRecorder() as rec:
        losses_ref = ref.loss(inputs, samples)
    criterion = ours.panoptic_head.criterion if hasattr(ours, 'panoptic_head') \
        else ours.decode_head.criterion
    stream = torch.cat([d.flatten() for d in rec.draws])
    expected = torch.rand(stream.numel(), generator=torch.Generator().manual_seed(seed))
    assert torch.equal(stream, expected), 'MMDet drew its points from another stream'
    criterion.generator = torch.Generator().manual_seed(seed)
    try:
        losses_ours = ours.loss(inputs, samples)
    finally:
        criterion.generator = None
    return losses_ref, losses_ours
