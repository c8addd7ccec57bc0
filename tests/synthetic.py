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
    """Records every ``torch.rand`` draw made inside the ``with`` block."""

    def __init__(self):
        self.draws = []

    def __enter__(self):
        self._orig = torch.rand

        def rand(*args, **kwargs):
            out = self._orig(*args, **kwargs)
            self.draws.append(out.clone())
            return out
        torch.rand = rand
        return self

    def __exit__(self, *exc):
        torch.rand = self._orig


def replay_mmdet_points(head, draws, num_sets, num_images):
    """Make our ``head`` use the random points MMDet's head drew (recorded
    with :class:`RandRecorder` around its ``loss``).

    MMDet draws, per prediction set, one (1, K, 2) matching draw per image,
    then for the set's matches (N, 3K, 2) candidates and (N, K/4, 2) uniform
    points; the draws are told apart by their second dimension.
    """
    k = head.num_points
    match = [d[0] for d in draws if d.shape[1] == k]
    cands = [d for d in draws if d.shape[1] == int(k * head.oversample_ratio)]
    rests = [d for d in draws if d.shape[1] == k - int(k * head.importance_sample_ratio)]
    assert len(match) == num_sets * num_images
    match = torch.stack(match).view(num_sets, num_images, k, 2).transpose(0, 1)
    head.sample_match_points = lambda s, b, device: match.to(device)
    queue = [torch.cat(cands), torch.cat(rests)] if cands else []

    def rand(*shape, device=None):
        out = queue.pop(0)
        assert tuple(out.shape) == tuple(shape), (out.shape, shape)
        return out.to(device)

    from m2f_mm.models.utils.point_sample import uncertain_point_coords

    def sample_loss_points(mask_logits, set_sizes):
        return uncertain_point_coords(mask_logits[:, None], k, head.oversample_ratio,
                                      head.importance_sample_ratio, rand=rand)
    head.sample_loss_points = sample_loss_points
