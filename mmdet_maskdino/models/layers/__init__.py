from .denoising import DnQueries, MaskDINODnQueryGenerator, build_dn_attn_mask
from .pixel_decoder import LevelOrder, MaskDINOPixelDecoder
from .query_selection import SelectedQueries, select_queries
from .transformer_decoder import MaskDINOTransformerDecoder

__all__ = ['LevelOrder', 'MaskDINOPixelDecoder', 'MaskDINOTransformerDecoder', 'SelectedQueries',
           'select_queries', 'DnQueries', 'MaskDINODnQueryGenerator', 'build_dn_attn_mask']
