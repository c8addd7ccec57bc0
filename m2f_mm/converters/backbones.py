"""What the detectron2 and Hugging Face converters share about backbones:
value transforms into MMDet's/MMSeg's ``ResNet`` and ``SwinTransformer``
layouts, and the backbone configs that build them."""
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .loading import ConversionError

# blocks per stage -> depth of MMDet's/MMSeg's ResNet
RESNET_DEPTHS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 50, (3, 4, 23, 3): 101,
                 (3, 8, 36, 3): 152}
RESNET_BASIC_DEPTHS = {(2, 2, 2, 2): 18, (3, 4, 6, 3): 34}


def bn_running_var(value: Tensor) -> Tuple[Tensor, Tensor]:
    """running_var, and the batch counter that MMDet's BN state has."""
    return value, torch.zeros((), dtype=torch.long)


def relative_position_index(window: int) -> Tensor:
    """The (W², W²) index of a W×W window into Swin's relative-position
    bias table: entry (i, j) is the table row of the offset between window
    positions i and j (rows of (2W-1)² offsets, row offset major)."""
    rows = torch.arange(window).repeat_interleave(window)  # row of each position
    cols = torch.arange(window).repeat(window)
    dr = rows[:, None] - rows[None, :] + (window - 1)
    dc = cols[:, None] - cols[None, :] + (window - 1)
    return dr * (2 * window - 1) + dc


def window_of_table(rows: int) -> int:
    """W from a bias table of (2W-1)² rows."""
    side = int(round(rows ** 0.5))
    if side * side != rows or side % 2 == 0:
        raise ConversionError(f'a relative-position bias table of {rows} rows is not '
                              '(2W-1)² for a square window W')
    return (side + 1) // 2


def rebuild_relative_index(value: Tensor) -> Tensor:
    """A file's relative_position_index replaced by the one its size implies."""
    w = int(round(value.shape[0] ** 0.5))
    if tuple(value.shape) != (w * w, w * w):
        raise ConversionError(f'relative_position_index of shape {list(value.shape)} '
                              'is not (W², W²)')
    return relative_position_index(w)


def table_with_index(table: Tensor) -> Tuple[Tensor, Tensor]:
    """A bias table, and the index MMDet keeps beside it (as a buffer)."""
    return table, relative_position_index(window_of_table(table.shape[0]))


def _unfold_order(channels: int) -> Tensor:
    """For each input channel of MMDet's PatchMerging, ``c*4 + 2*dy + dx``
    (``nn.Unfold`` order), the channel of the original Swin's, which
    concatenates the neighbours (dy, dx) = (0,0), (1,0), (0,1), (1,1) as
    blocks of C channels: ``(dy + 2*dx) * C + c``."""
    c = channels // 4
    k = torch.arange(4)
    dy, dx = k // 2, k % 2
    return ((dy + 2 * dx)[None, :] * c + torch.arange(c)[:, None]).reshape(-1)


def merge_norm_to_unfold(value: Tensor) -> Tensor:
    return value[_unfold_order(value.shape[0])]


def merge_reduction_to_unfold(value: Tensor) -> Tensor:
    return value[:, _unfold_order(value.shape[1])]


def resnet_config(blocks: Sequence[int], stem_channels: int, base_channels: int,
                  bottleneck: bool = True, stride_in_1x1: bool = False,
                  where: str = 'checkpoint') -> dict:
    """MMDet's/MMSeg's ``ResNet`` with frozen, eval-mode BN."""
    depth = (RESNET_DEPTHS if bottleneck else RESNET_BASIC_DEPTHS).get(tuple(blocks))
    if depth is None:
        raise ConversionError(f'{where}: a ResNet with {list(blocks)} '
                              f'{"bottleneck" if bottleneck else "basic"} blocks per '
                              'stage is not one MMDet/MMSeg can build')
    return dict(type='ResNet', depth=depth, num_stages=4, out_indices=(0, 1, 2, 3),
                stem_channels=int(stem_channels), base_channels=int(base_channels),
                frozen_stages=-1, norm_cfg=dict(type='BN', requires_grad=False),
                norm_eval=True, style='caffe' if stride_in_1x1 else 'pytorch',
                init_cfg=None)


def swin_config(embed_dims: int, patch_size: int, depths: Sequence[int],
                num_heads: Sequence[int], window_size: int, mlp_ratio: float,
                qkv_bias: bool, pretrain_img_size: int, patch_norm: bool = True) -> dict:
    """MMDet's/MMSeg's ``SwinTransformer`` (no absolute position embedding)."""
    ratio = float(mlp_ratio)
    return dict(type='SwinTransformer', pretrain_img_size=int(pretrain_img_size),
                embed_dims=int(embed_dims), patch_size=int(patch_size),
                depths=[int(d) for d in depths], num_heads=[int(h) for h in num_heads],
                window_size=int(window_size),
                mlp_ratio=int(ratio) if ratio.is_integer() else ratio,
                qkv_bias=bool(qkv_bias), patch_norm=bool(patch_norm),
                drop_rate=0., attn_drop_rate=0., drop_path_rate=0.3,
                out_indices=(0, 1, 2, 3), with_cp=False, frozen_stages=-1,
                init_cfg=None)
