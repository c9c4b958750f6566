"""Mask DINO's pixel decoder: multi-scale deformable encoder + the segmentation branch."""
from enum import Enum
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule, caffe2_xavier_init, xavier_init
from torch import Tensor, nn

from mmdet.models.layers import SinePositionalEncoding
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, OptMultiConfig
from ..utils import flatten_levels, level_shapes
from .fp32_deform_attn import MaskDINOTransformerEncoder, fp32_region


class LevelOrder(str, Enum):
    """Order of the feature levels inside the encoder (and of ``multi_scale_features``).

    * ``LOW2HIGH`` (upstream default config): finest first, ``[C3, C4, C5, extra...]``.
    * ``HIGH2LOW`` (upstream ``_3s`` configs): coarsest first, ``[extra..., C5, C4, C3]``.

    Input projection ``i`` and ``level_embed[i]`` follow this order. The decoder always sees the list
    reversed.
    """
    LOW2HIGH = 'low2high'
    HIGH2LOW = 'high2low'


@MODELS.register_module()
class MaskDINOPixelDecoder(BaseModule):
    """Deformable-attention encoder over C3..C5 (+ extra levels) and the pixel embedding.

    Args:
        in_channels (Sequence[int]): Channels of the backbone outputs C2..C5.
        embed_dims (int): Channels of the encoder and of the pixel embedding (256 upstream).
        mask_dims (int): Channels of ``mask_features`` (256 upstream).
        num_extra_levels (int): Extra coarser levels made by 3x3 stride-2 conv + GN from C5 (1 in the
            released default model: the 1/64 level; 0 for ``_3s``).
        level_order (str): ``'low2high'`` or ``'high2low'``, see :class:`LevelOrder`.
        encoder (dict): Config of :class:`MaskDINOTransformerEncoder` (Deformable DETR's, with
            fp32 deformable attention).
        positional_encoding (dict): Config of :class:`SinePositionalEncoding`.
        norm_cfg (dict): Norm of the projections and the segmentation branch (GN, 32 groups).
    """

    def __init__(self,
                 *,
                 in_channels: Sequence[int] = (256, 512, 1024, 2048),
                 embed_dims: int = 256,
                 mask_dims: int = 256,
                 num_extra_levels: int = 1,
                 level_order: str = 'low2high',
                 encoder: ConfigType = dict(),
                 positional_encoding: ConfigType = dict(normalize=True),
                 norm_cfg: ConfigType = dict(type='GN', num_groups=32),
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(in_channels) < 2:
            raise ValueError(f'need C2 and at least one more level, got {in_channels}')
        self.level_order = LevelOrder(level_order)
        self.num_extra_levels = num_extra_levels
        trans_channels = list(in_channels[1:])  # C3..C5, finest first
        self.num_levels = len(trans_channels) + num_extra_levels
        projections = [self._proj(c, embed_dims, 1, 1, norm_cfg) for c in trans_channels]
        extra, c = [], trans_channels[-1]
        for _ in range(num_extra_levels):
            extra.append(self._proj(c, embed_dims, 3, 2, norm_cfg))
            c = embed_dims
        if self.level_order == LevelOrder.LOW2HIGH:
            self.input_projs = nn.ModuleList(projections + extra)
        else:
            self.input_projs = nn.ModuleList(extra[::-1] + projections[::-1])
        self.level_embed = nn.Parameter(torch.zeros(self.num_levels, embed_dims))
        self.positional_encoding = SinePositionalEncoding(**positional_encoding)
        self.encoder = MaskDINOTransformerEncoder(**encoder)
        # segmentation branch: lateral(C2) + up(encoder 1/8) -> 3x3 conv -> 1x1 conv
        self.lateral_conv = ConvModule(in_channels[0], embed_dims, 1, bias=False, norm_cfg=norm_cfg,
                                       act_cfg=None)
        self.output_conv = ConvModule(embed_dims, embed_dims, 3, padding=1, bias=False,
                                      norm_cfg=norm_cfg, act_cfg=dict(type='ReLU'))
        self.mask_feature = nn.Conv2d(embed_dims, mask_dims, 1)

    @staticmethod
    def _proj(in_ch: int, out_ch: int, kernel: int, stride: int, norm_cfg: ConfigType) -> nn.Module:
        return ConvModule(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2, bias=True,
                          norm_cfg=norm_cfg, act_cfg=None)

    def init_weights(self) -> None:
        for proj in self.input_projs:
            xavier_init(proj.conv, gain=1, bias=0, distribution='uniform')
        # a bare Parameter: mmengine's normal_init(module) would only touch a ``.weight``
        nn.init.normal_(self.level_embed, mean=0, std=1)
        # upstream: xavier-uniform for every matrix of the encoder, then MSDA's own init
        for p in self.encoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for layer in self.encoder.layers:
            layer.self_attn.init_weights()
        caffe2_xavier_init(self.lateral_conv.conv, bias=0)
        caffe2_xavier_init(self.output_conv.conv, bias=0)
        caffe2_xavier_init(self.mask_feature, bias=0)

    def _project(self, feats: Sequence[Tensor]) -> List[Tensor]:
        """Project C3..C5 and build extra levels; return them in encoder order."""
        trans = list(feats[1:])
        n = len(trans)
        if self.level_order == LevelOrder.LOW2HIGH:
            srcs = [self.input_projs[i](x) for i, x in enumerate(trans)]
            x = trans[-1]
            for i in range(self.num_extra_levels):
                x = self.input_projs[n + i](x)
                srcs.append(x)
            return srcs
        extra, x = [], trans[-1]
        for i in range(self.num_extra_levels):
            x = self.input_projs[self.num_extra_levels - 1 - i](x)
            extra.append(x)
        srcs = [self.input_projs[self.num_extra_levels + i](x) for i, x in enumerate(trans[::-1])]
        return extra[::-1] + srcs

    def forward(self, feats: Sequence[Tensor]) -> Tuple[Tensor, List[Tensor]]:
        """Encode the backbone features, in fp32 under mixed precision (as upstream, whose
        ``forward_features`` runs with autocast disabled on ``.float()`` features).

        Args:
            feats (Sequence[Tensor]): C2..C5, shapes (bs, in_channels[i], H / 2^(i+2), W / 2^(i+2)).

        Returns:
            tuple: ``mask_features`` (bs, mask_dims, H/4, W/4), the pixel embedding; and
            ``multi_scale_features``: encoder outputs (bs, embed_dims, h_l, w_l) in encoder order,
            all float32.
        """
        return fp32_region(self._encode, *feats)

    def _encode(self, *feats: Tensor) -> Tuple[Tensor, List[Tensor]]:
        srcs = self._project(feats)
        bs = srcs[0].size(0)
        pos = [
            self.positional_encoding(src.new_zeros((bs, *src.shape[-2:]), dtype=torch.bool)) +
            self.level_embed[lvl].view(1, -1, 1, 1) for lvl, src in enumerate(srcs)
        ]
        query, spatial_shapes, level_start_index = flatten_levels(srcs)
        query_pos = flatten_levels(pos)[0]
        valid_ratios = srcs[0].new_ones((bs, len(srcs), 2))
        shapes = level_shapes(srcs)
        memory = self.encoder(query=query, query_pos=query_pos, key_padding_mask=None,
                              spatial_shapes=spatial_shapes, level_shapes=shapes,
                              level_start_index=level_start_index, valid_ratios=valid_ratios)
        outs = [
            m.transpose(1, 2).reshape(bs, -1, h, w)
            for m, (h, w) in zip(memory.split([h * w for h, w in shapes], 1), shapes)
        ]
        finest = outs[0] if self.level_order == LevelOrder.LOW2HIGH else outs[-1]
        # contiguous first: on the CPU, bilinear upsampling of this channels-last view is ~10x
        # slower than copy + upsample
        y = self.lateral_conv(feats[0]) + F.interpolate(
            finest.contiguous(), size=feats[0].shape[-2:], mode='bilinear', align_corners=False)
        mask_features = self.mask_feature(self.output_conv(y))
        return mask_features, outs
