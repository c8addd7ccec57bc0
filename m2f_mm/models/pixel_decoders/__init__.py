from .fpn_pixel_decoder import FPNPixelDecoder
from .msdeformattn_pixel_decoder import MSDeformAttnPixelDecoder

__all__ = ['FPNPixelDecoder', 'MSDeformAttnPixelDecoder']
