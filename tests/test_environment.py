"""The pinned stack is installed and usable on torch 2.13 / numpy 2 (what
m2f_mm works around in it: tests/test_patches.py)."""
import numpy as np
import torch


def test_versions():
    import mmcv
    import mmdet
    import mmengine
    import mmseg
    assert mmcv.__version__ == '2.1.0'
    assert mmdet.__version__ == '3.3.0'
    assert mmseg.__version__ == '1.2.2'
    assert mmengine.__version__.startswith('0.10.')


def test_mmcv_ops_are_compiled():
    """MultiScaleDeformableAttention runs on mmcv's compiled extension, not a
    pure-Python stand-in."""
    import mmcv.ops.multi_scale_deform_attn as msda
    from mmcv.ops import MultiScaleDeformableAttention  # noqa: F401
    ext = msda.ext_module
    assert ext.__file__.endswith('.so'), ext.__file__
    assert hasattr(ext, 'ms_deform_attn_forward')
    # and a compiled op actually runs on CPU
    from mmcv.ops import nms
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)
    assert keep.tolist() == [0, 2]


def test_panopticapi_on_numpy2():
    """panopticapi-lite is installed without its numpy<2 pin; its id
    encoding and MMDet's PQ code run on numpy 2."""
    assert int(np.__version__.split('.')[0]) >= 2
    from panopticapi.utils import id2rgb, rgb2id
    ids = np.array([[0, 1], [256, 65536 + 7]], dtype=np.int64)
    assert np.array_equal(rgb2id(id2rgb(ids)), ids)
    from mmdet.evaluation.metrics import CocoPanopticMetric  # noqa: F401
