from .box_init import BoxInitType, init_anchor_boxes, mask2box_bitmask, mask2box_tight
from .levels import flatten_levels
from .proposals import gen_encoder_output_proposals

__all__ = ['BoxInitType', 'init_anchor_boxes', 'mask2box_bitmask', 'mask2box_tight',
           'gen_encoder_output_proposals', 'flatten_levels']
