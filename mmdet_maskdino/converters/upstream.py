"""Convert the authors' detectron2 Mask DINO checkpoints to this plugin's state dict.

Upstream keys live under ``sem_seg_head.pixel_decoder.*`` (``MaskDINOEncoder``),
``sem_seg_head.predictor.*`` (``MaskDINODecoder``) and ``backbone.*`` (detectron2 ResNet, or the
``D2SwinTransformer`` of the Swin-L models, whose keys are the original Swin's; those go through
mmdet's own ``swin_converter``, which also reorders the patch-merging weights). The mapping
is explicit, rule by rule; every upstream key must be consumed by exactly one rule, and tied (aliased)
upstream tensors -- the box MLP shared by every decoder layer and the encoder head, the decoder norm
-- must really be equal, else conversion fails listing what is wrong.
"""
import re
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch import Tensor

PD = 'sem_seg_head.pixel_decoder.'
PR = 'sem_seg_head.predictor.'

#: upstream names of the one shared box MLP (plugin: ``reg_branch``).
_BOX_ALIASES = (re.compile(re.escape(PR) + r'_bbox_embed\.(.+)$'),
                re.compile(re.escape(PR) + r'bbox_embed\.\d+\.(.+)$'),
                re.compile(re.escape(PR) + r'decoder\.bbox_embed\.\d+\.(.+)$'))
_NORM_ALIASES = (re.compile(re.escape(PR) + r'decoder_norm\.(.+)$'),
                 re.compile(re.escape(PR) + r'decoder\.norm\.(.+)$'))


class ConversionError(ValueError):
    """The checkpoint does not match what the converter (or the target model) expects."""


def _encoder_layer(rest: str) -> str:
    rest = rest.replace('norm1.', 'norms.0.').replace('norm2.', 'norms.1.')
    return rest.replace('linear1.', 'ffn.layers.0.0.').replace('linear2.', 'ffn.layers.1.')


def _decoder_layer(rest: str) -> str:
    # upstream: norm2 after self-attn, norm1 after cross-attn, norm3 after the FFN
    for old, new in (('norm2.', 'norms.0.'), ('norm1.', 'norms.1.'), ('norm3.', 'norms.2.')):
        if rest.startswith(old):
            return new + rest[len(old):]
    if rest.startswith('self_attn.'):
        return 'self_attn.attn.' + rest[len('self_attn.'):]
    return rest.replace('linear1.', 'ffn.layers.0.0.').replace('linear2.', 'ffn.layers.1.')


def _conv_gn(rest: str) -> str:
    """``0.*`` (conv) / ``1.*`` (GN) of an upstream Sequential -> ConvModule ``conv`` / ``gn``."""
    return re.sub(r'^0\.', 'conv.', re.sub(r'^1\.', 'gn.', rest))


def _c2_conv(rest: str) -> str:
    """detectron2 ``Conv2d(norm=GN)``: ``weight`` / ``norm.*`` -> ConvModule ``conv.weight`` / ``gn.*``."""
    return 'gn.' + rest[len('norm.'):] if rest.startswith('norm.') else 'conv.' + rest


#: every parameter / buffer name of the original Swin Transformer (as detectron2 stores it).
_SWIN_KEY = re.compile(
    r'backbone\.(patch_embed\.(proj|norm)\.(weight|bias)'
    r'|layers\.\d+\.blocks\.\d+\.(norm[12]|attn\.(qkv|proj)|mlp\.fc[12])\.(weight|bias)'
    r'|layers\.\d+\.blocks\.\d+\.attn\.relative_position_(bias_table|index)'
    r'|layers\.\d+\.downsample\.(reduction\.weight|norm\.(weight|bias))'
    r'|norm\d+\.(weight|bias)|absolute_pos_embed)$')


def _swin_backbone(sd: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Original-Swin ``backbone.*`` keys -> mmdet ``SwinTransformer`` keys (mmdet's converter)."""
    from mmdet.models.backbones.swin import swin_converter
    return swin_converter({k[len('backbone.'):]: v for k, v in sd.items()})


def _backbone(key: str) -> Optional[str]:
    m = re.match(r'backbone\.stem\.conv1\.(norm\.)?(.+)$', key)
    if m:
        return f'backbone.{"bn1" if m.group(1) else "conv1"}.{m.group(2)}'
    m = re.match(r'backbone\.res(\d)\.(\d+)\.(conv\d|shortcut)\.(norm\.)?(.+)$', key)
    if not m:
        return None
    stage, block, conv, norm, rest = m.groups()
    if conv == 'shortcut':
        name = 'downsample.1' if norm else 'downsample.0'
    else:
        name = f'bn{conv[-1]}' if norm else conv
    return f'backbone.layer{int(stage) - 1}.{block}.{name}.{rest}'


_RULES: List[Tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(re.escape(PD) + r'input_proj\.(\d+)\.(.+)$'),
     lambda m: f'pixel_decoder.input_projs.{m[1]}.{_conv_gn(m[2])}'),
    (re.compile(re.escape(PD) + r'transformer\.level_embed$'),
     lambda m: 'pixel_decoder.level_embed'),
    (re.compile(re.escape(PD) + r'transformer\.encoder\.layers\.(\d+)\.(.+)$'),
     lambda m: f'pixel_decoder.encoder.layers.{m[1]}.{_encoder_layer(m[2])}'),
    (re.compile(re.escape(PD) + r'mask_features\.(.+)$'),
     lambda m: f'pixel_decoder.mask_feature.{m[1]}'),
    (re.compile(re.escape(PD) + r'adapter_1\.(.+)$'),
     lambda m: f'pixel_decoder.lateral_conv.{_c2_conv(m[1])}'),
    (re.compile(re.escape(PD) + r'layer_1\.(.+)$'),
     lambda m: f'pixel_decoder.output_conv.{_c2_conv(m[1])}'),
    (re.compile(re.escape(PR) + r'enc_output\.(.+)$'), lambda m: f'memory_trans_fc.{m[1]}'),
    (re.compile(re.escape(PR) + r'enc_output_norm\.(.+)$'),
     lambda m: f'memory_trans_norm.{m[1]}'),
    (re.compile(re.escape(PR) + r'class_embed\.(.+)$'), lambda m: f'cls_branch.{m[1]}'),
    (re.compile(re.escape(PR) + r'label_enc\.(.+)$'),
     lambda m: f'dn_generator.label_embedding.{m[1]}'),
    (re.compile(re.escape(PR) + r'mask_embed\.(.+)$'), lambda m: f'mask_embed.{m[1]}'),
    (re.compile(re.escape(PR) + r'query_feat\.(.+)$'), lambda m: f'query_feat.{m[1]}'),
    (re.compile(re.escape(PR) + r'query_embed\.(.+)$'), lambda m: f'query_embed.{m[1]}'),
    (re.compile(re.escape(PR) + r'decoder\.layers\.(\d+)\.(.+)$'),
     lambda m: f'decoder.layers.{m[1]}.{_decoder_layer(m[2])}'),
    (re.compile(re.escape(PR) + r'decoder\.ref_point_head\.(.+)$'),
     lambda m: f'decoder.ref_point_head.{m[1]}'),
]


def _tied(sd: Dict[str, Tensor], patterns, target: str, errors: List[str]) -> Dict[str, Tensor]:
    """Collect an aliased group, check all copies are equal, return ``{target.rest: tensor}``."""
    groups: Dict[str, List[Tuple[str, Tensor]]] = {}
    for key, value in sd.items():
        for pattern in patterns:
            m = pattern.match(key)
            if m:
                groups.setdefault(m[1], []).append((key, value))
                break
    out = {}
    for rest, items in groups.items():
        first_key, first = items[0]
        for key, value in items[1:]:
            if value.shape != first.shape or not torch.equal(value, first):
                errors.append(f'{key} differs from {first_key}: the plugin shares one tensor '
                              f'({target}.{rest}) between them, the checkpoint does not')
        out[f'{target}.{rest}'] = first
    return out


def describe_upstream(sd: Dict[str, Tensor]) -> Dict[str, object]:
    """Read the architecture from an upstream state dict (never assumed).

    Returns:
        dict: ``num_levels`` (encoder levels), ``num_extra_levels`` (3x3 stride-2 levels),
        ``level_order`` ('low2high' / 'high2low'), ``num_classes``, ``num_encoder_layers``,
        ``num_decoder_layers``, ``embed_dims``, ``has_backbone``, ``backbone`` (``'resnet'``,
        ``'swin'`` or None), ``two_stage`` (query selection:
        ``enc_output`` present) and ``num_learnable_queries`` (rows of ``query_feat``; 0 if none).
        ``num_classes`` is the class head's width: classes + 1 for the CE-trained semantic model.
    """
    projs = {}
    for key, value in sd.items():
        m = re.match(re.escape(PD) + r'input_proj\.(\d+)\.0\.weight$', key)
        if m:
            projs[int(m[1])] = value
    if not projs:
        raise ConversionError('not an upstream Mask DINO checkpoint: no '
                              f'{PD}input_proj.*.0.weight keys')
    extra = [i for i, w in projs.items() if w.shape[-1] == 3]
    plain = sorted((i for i in projs if i not in extra))
    in_ch = [projs[i].shape[1] for i in plain]
    order = 'high2low' if len(in_ch) > 1 and in_ch[0] > in_ch[-1] else 'low2high'

    def count(pattern: str) -> int:
        return len({m[1] for k in sd for m in [re.match(pattern, k)] if m})

    cls = sd.get(PR + 'class_embed.weight')
    return dict(num_levels=len(projs), num_extra_levels=len(extra), level_order=order,
                num_classes=None if cls is None else cls.shape[0],
                num_encoder_layers=count(re.escape(PD) + r'transformer\.encoder\.layers\.(\d+)\.'),
                num_decoder_layers=count(re.escape(PR) + r'decoder\.layers\.(\d+)\.'),
                embed_dims=sd[PD + 'transformer.level_embed'].shape[1],
                has_backbone=any(k.startswith('backbone.') for k in sd),
                backbone='swin' if any(_SWIN_KEY.match(k) for k in sd) else
                'resnet' if any(k.startswith('backbone.res') for k in sd) else None,
                two_stage=PR + 'enc_output.weight' in sd,
                num_learnable_queries=sd[PR + 'query_feat.weight'].shape[0]
                if PR + 'query_feat.weight' in sd else 0)


def convert_upstream_state_dict(sd: Dict[str, Tensor], head_prefix: str = 'panoptic_head.',
                                add_bn_counters: bool = True) -> 'OrderedDict[str, Tensor]':
    """Map an upstream state dict to this plugin's keys.

    Args:
        sd (dict): Upstream state dict (``checkpoint['model']``).
        head_prefix (str): Prefix of the head in the target model (``'panoptic_head.'`` for the
            :class:`MaskDINO` detector, ``''`` for a bare :class:`MaskDINOHead`).
        add_bn_counters (bool): Add ``num_batches_tracked`` to converted BN layers (detectron2's
            FrozenBN has none; mmdet's BN expects one).

    Raises:
        ConversionError: Listing every unknown key and every inconsistent alias.
    """
    errors: List[str] = []
    out: 'OrderedDict[str, Tensor]' = OrderedDict()
    for key, value in _tied(sd, _BOX_ALIASES, 'reg_branch', errors).items():
        out[head_prefix + key] = value
    for key, value in _tied(sd, _NORM_ALIASES, 'decoder.norm', errors).items():
        out[head_prefix + key] = value
    tied = {k for k in sd if any(p.match(k) for p in _BOX_ALIASES + _NORM_ALIASES)}
    swin = {k: v for k, v in sd.items() if _SWIN_KEY.match(k)}
    if swin:
        out.update(_swin_backbone(swin))
    unknown = []
    for key, value in sd.items():
        if key in tied or key in swin or key.startswith('criterion.') or \
                key in ('pixel_mean', 'pixel_std'):
            continue
        if key.startswith('backbone.'):
            new = _backbone(key)
            if new is None:
                unknown.append(key)
            else:
                out[new] = value
                if add_bn_counters and new.endswith('.running_var'):
                    out[new[:-len('running_var')] + 'num_batches_tracked'] = torch.tensor(0)
            continue
        for pattern, target in _RULES:
            m = pattern.match(key)
            if m:
                out[head_prefix + target(m)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        errors.append(f'{len(unknown)} upstream key(s) with no conversion rule: {unknown}')
    if errors:
        raise ConversionError('cannot convert checkpoint:\n  ' + '\n  '.join(errors))
    return out


def load_converted(model: torch.nn.Module, converted: Dict[str, Tensor]) -> None:
    """Load strictly, raising :class:`ConversionError` with the missing / unexpected keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(converted))
    unexpected = sorted(set(converted) - set(own))
    shapes = [f'{k}: checkpoint {tuple(converted[k].shape)} vs model {tuple(own[k].shape)}'
              for k in set(own) & set(converted) if own[k].shape != converted[k].shape]
    if missing or unexpected or shapes:
        raise ConversionError(f'converted state dict does not fit the model:\n  missing '
                              f'{missing}\n  unexpected {unexpected}\n  shape mismatches {shapes}')
    model.load_state_dict(converted, strict=True)
