"""Sinusoidal 2-D position embeddings (DETR's), cached per feature shape."""
import math
from typing import Dict, Tuple

import torch
from torch import Tensor, nn


class SinePositionEmbedding(nn.Module):
    """Normalised sine/cosine embedding of (y, x) for an unpadded map.

    The result for a (H, W) map is (num_feats * 2, H, W): ``num_feats``
    channels for y followed by ``num_feats`` for x, sin and cos interleaved.
    It depends only on the shape, device and dtype, so it is computed once
    per shape and reused (it holds no parameters).
    """

    def __init__(self,
                 num_feats: int = 128,
                 temperature: float = 10000.,
                 scale: float = 2 * math.pi,
                 eps: float = 1e-6) -> None:
        super().__init__()
        self.num_feats = num_feats
        self.temperature = temperature
        self.scale = scale
        self.eps = eps
        self._cache: Dict[Tuple, Tensor] = {}

    def forward(self, height: int, width: int, device: torch.device,
                dtype: torch.dtype = torch.float32) -> Tensor:
        if torch.compiler.is_compiling():
            # traced, it is a few ops of the graph; a cache would be a side
            # effect and a guard per entry
            return self._compute(height, width, device).to(dtype)
        key = (height, width, str(device), dtype)
        pos = self._cache.get(key)
        if pos is None:
            pos = self._compute(height, width, device).to(dtype)
            if len(self._cache) > 32:  # many input sizes: keep memory bounded
                self._cache.clear()
            self._cache[key] = pos
        return pos

    def _compute(self, height: int, width: int, device) -> Tensor:
        # cumulative sums of an all-valid mask are 1..H and 1..W
        y = torch.arange(1, height + 1, dtype=torch.float32, device=device)
        x = torch.arange(1, width + 1, dtype=torch.float32, device=device)
        y = y / (height + self.eps) * self.scale
        x = x / (width + self.eps) * self.scale
        dim_t = torch.arange(self.num_feats, dtype=torch.float32, device=device)
        dim_t = self.temperature**(2 * torch.div(dim_t, 2, rounding_mode='floor') /
                                   self.num_feats)
        pos_y = self._interleave(y[:, None] / dim_t)  # H×F
        pos_x = self._interleave(x[:, None] / dim_t)  # W×F
        pos_y = pos_y[:, None, :].expand(height, width, -1)
        pos_x = pos_x[None, :, :].expand(height, width, -1)
        return torch.cat([pos_y, pos_x], dim=-1).permute(2, 0, 1).contiguous()

    @staticmethod
    def _interleave(t: Tensor) -> Tensor:
        return torch.stack([t[:, 0::2].sin(), t[:, 1::2].cos()],
                           dim=2).flatten(1)
