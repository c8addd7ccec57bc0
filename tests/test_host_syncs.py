"""One round trip to the host per train step: counted on CPU over the head's
loss and backward (the decoder, the criterion, the host's target path),
with targets from the pipeline (BuildMaskTargets) and the fast paths off
(the path CUDA takes). Each counted call is a device synchronisation on
CUDA: a copy to the host (``.item()``, ``.tolist()``, ``.cpu()``, ``if
tensor:``, ``nonzero``, ``unique``, boolean-mask indexing) or a tensor made
from host data (``torch.as_tensor``, ``torch.tensor``) to go to the GPU.
(``torch.from_numpy`` is not seen by a TorchFunctionMode: the project makes
device tensors from host arrays with ``torch.as_tensor``.)"""
import pytest
import torch
from mmdet.registry import MODELS
from mmdet.utils import register_all_modules
from torch.overrides import TorchFunctionMode

from m2f_mm.datasets.transforms import BuildMaskTargets
from m2f_mm.ops import fast_paths
from reference_models import ours_cfg
from synthetic import make_sample

register_all_modules(init_default_scope=False)
Tensor = torch.Tensor
TO_HOST = {Tensor.item, Tensor.tolist, Tensor.cpu, Tensor.__bool__, Tensor.__int__,
           Tensor.__float__, Tensor.__index__, Tensor.nonzero, torch.nonzero,
           Tensor.unique, torch.unique, torch.unique_consecutive, torch.masked_select,
           Tensor.masked_select}
FROM_HOST = {torch.as_tensor, torch.tensor}


class HostSyncs(TorchFunctionMode):
    """Counts the calls above, by name."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in TO_HOST:
            self.calls.append(func.__name__)
        elif func in FROM_HOST and not isinstance(args[0] if args else None, Tensor):
            self.calls.append(func.__name__)
        elif func is Tensor.__getitem__ and _bool_index(args[1]):
            self.calls.append('boolean-mask indexing')
        elif func is Tensor.to and _to_host(args[1:], kwargs):
            self.calls.append('to(cpu)')  # spelled out: a copy to the host
        return func(*args, **kwargs)


def _bool_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in items)


def _to_host(args, kwargs) -> bool:
    """``.to('cpu')`` written out. (``.to(device)`` with the data's own
    device is no copy on CUDA and cannot be told apart on a CPU run.)"""
    target = kwargs.get('device', args[0] if args else None)
    return isinstance(target, str) and torch.device(target).type == 'cpu'


def _pipeline_samples():
    """Two images whose targets BuildMaskTargets built, as the dataloader
    would hand them over."""
    build = BuildMaskTargets(num_things_classes=3, num_stuff_classes=2)
    samples = []
    for seed in (1, 2):
        sample = make_sample(64, 64, seed=seed)
        samples.append(build.transform(dict(data_samples=sample))['data_samples'])
    return samples


@pytest.mark.parametrize('point_sampled', [True, False])
def test_one_round_trip_to_the_host_per_train_step(point_sampled):
    torch.manual_seed(0)
    model = MODELS.build(ours_cfg(num_layers=3, feat=32))
    model.init_weights()
    head = model.panoptic_head
    head.criterion.point_sampled_loss = point_sampled
    samples = _pipeline_samples()
    assert all('gt_segments' in s for s in samples)
    feats = model.extract_feat(torch.randn(2, 3, 64, 64))
    counter = HostSyncs()
    with fast_paths(False), counter:
        losses = head.loss(feats, samples)
        sum(losses.values()).backward()
    print('host round-trip calls:', counter.calls)
    assert all(torch.isfinite(v) for v in losses.values())
    assert len(counter.calls) <= 2, counter.calls
    if point_sampled:  # the costs go to the host, the indices come back
        assert sorted(counter.calls) == ['as_tensor', 'cpu']


def test_the_counter_sees_what_it_counts():
    """The counter itself: each kind of call it looks for is counted."""
    x = torch.arange(4.)
    counter = HostSyncs()
    with counter:
        x.sum().item()
        x.tolist()
        bool(x.any())
        x[x > 1]
        x.nonzero()
        torch.unique(x)
        torch.as_tensor([1, 2])
        x.to('cpu')
        x + 1  # not counted
    assert counter.calls == ['item', 'tolist', '__bool__', 'boolean-mask indexing',
                             'nonzero', 'unique', 'as_tensor', 'to(cpu)']
