"""Converting upstream checkpoints: full-size key lists load strictly; bad inputs fail clearly."""
import os.path as osp
import re

import pytest
import torch
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS
from mmdet_maskdino.converters import (ConversionError, convert_upstream_state_dict,
                                       describe_upstream, load_converted)
from mmdet_maskdino.testing import REPO_ROOT, get_repo_config

FIXTURES = osp.join(REPO_ROOT, '..', 'shared', 'fixtures')
needs_fixtures = pytest.mark.skipif(not osp.isdir(FIXTURES),
                                    reason=f'{FIXTURES} not present (needs ../shared)')
BOX_ALIAS = re.compile(r'sem_seg_head\.predictor\.(_bbox_embed|bbox_embed\.\d+|'
                       r'decoder\.bbox_embed\.\d+)\.(.+)$')
NORM_ALIAS = re.compile(r'sem_seg_head\.predictor\.(decoder_norm|decoder\.norm)\.(.+)$')


def random_upstream(keys_file: str) -> dict:
    """A random state dict with exactly the listed keys and shapes, aliased tensors tied."""
    gen = torch.Generator().manual_seed(0)
    sd, shared = {}, {}
    with open(osp.join(FIXTURES, keys_file)) as f:
        for line in f:
            key, shape = line.rstrip('\n').split('\t')
            shape = tuple(int(s) for s in re.findall(r'\d+', shape))
            m = BOX_ALIAS.match(key) or NORM_ALIAS.match(key)
            group = None if m is None else ('box' if BOX_ALIAS.match(key) else 'norm', m[2])
            if group in shared:
                sd[key] = shared[group]
                continue
            sd[key] = torch.randn(shape, generator=gen)
            if group is not None:
                shared[group] = sd[key]
    return sd


def assert_copied(state: dict, upstream: dict, pairs: dict) -> None:
    """Each ``{plugin key: upstream key}`` pair holds the very same values after conversion."""
    for ours, theirs in pairs.items():
        assert torch.equal(state[ours], upstream[theirs]), f'{ours} != upstream {theirs}'


def _model(config: str, **head):
    init_default_scope('mmdet')
    cfg = get_repo_config(config)
    cfg.model.panoptic_head.update(head)
    if 'num_stuff_classes' in head:
        cfg.model.panoptic_fusion_head.num_stuff_classes = head['num_stuff_classes']
    return MODELS.build(cfg.model)


@needs_fixtures
@pytest.mark.parametrize('keys_file,config,head,expected', [
    ('r50_instance_3s_dowsample1_2048_state_dict_keys.txt', 'maskdino_r50.py', {},
     (4, 1, 'low2high', 80)),
    ('r50_state_dict_keys.txt', 'maskdino/maskdino_r50-3s_8xb2-lsj-50e_coco.py', {},
     (3, 0, 'high2low', 80)),
    ('r50_panoptic_state_dict_keys.txt', 'maskdino_r50.py',
     dict(num_stuff_classes=53, box_init='no'), (4, 1, 'low2high', 133)),
])
def test_full_size_key_lists_convert_and_load_strictly(keys_file, config, head, expected):
    sd = random_upstream(keys_file)
    info = describe_upstream(sd)
    assert (info['num_levels'], info['num_extra_levels'], info['level_order'],
            info['num_classes']) == expected
    assert info['num_decoder_layers'] == 9 and info['num_encoder_layers'] == 6
    converted = convert_upstream_state_dict(sd)
    model = _model(config, **head)
    load_converted(model, converted)
    state = model.state_dict()
    # spot-check values landed where they belong
    assert_copied(state, sd, {
        'panoptic_head.cls_branch.weight': 'sem_seg_head.predictor.class_embed.weight',
        'panoptic_head.reg_branch.layers.2.bias':
        'sem_seg_head.predictor._bbox_embed.layers.2.bias',
        'panoptic_head.decoder.layers.3.norms.0.weight':
        'sem_seg_head.predictor.decoder.layers.3.norm2.weight',
        'backbone.layer3.5.bn3.running_var': 'backbone.res4.5.conv3.norm.running_var',
        'backbone.layer1.0.downsample.0.weight': 'backbone.res2.0.shortcut.weight',
    })


@needs_fixtures
def test_one_stage_semantic_model_converts_and_loads_strictly():
    """Upstream's ADE20K model has no key list in the fixtures: derive it from the panoptic one as
    upstream's code builds it without query selection (no ``enc_output*``; learnable ``query_feat``
    (100, 256) and ``query_embed`` (100, 4)) and with a CE class head of 150 + 1 outputs."""
    sd = {k: v for k, v in random_upstream('r50_panoptic_state_dict_keys.txt').items()
          if '.enc_output' not in k}
    pr = 'sem_seg_head.predictor.'
    gen = torch.Generator().manual_seed(1)
    sd[pr + 'query_feat.weight'] = torch.randn(100, 256, generator=gen)
    sd[pr + 'query_embed.weight'] = torch.randn(100, 4, generator=gen)
    sd[pr + 'class_embed.weight'] = torch.randn(151, 256, generator=gen)
    sd[pr + 'class_embed.bias'] = torch.randn(151, generator=gen)
    sd[pr + 'label_enc.weight'] = torch.randn(150, 256, generator=gen)
    info = describe_upstream(sd)
    assert not info['two_stage'] and info['num_learnable_queries'] == 100
    assert info['num_classes'] == 151
    model = _model('maskdino/maskdino_r50_8xb2-160k_ade20k-semantic.py')
    load_converted(model, convert_upstream_state_dict(sd))
    state = model.state_dict()
    assert_copied(state, sd, {
        'panoptic_head.query_feat.weight': pr + 'query_feat.weight',
        'panoptic_head.query_embed.weight': pr + 'query_embed.weight',
        'panoptic_head.cls_branch.bias': pr + 'class_embed.bias',
    })


@needs_fixtures
def test_level_count_mismatch_is_reported():
    sd = random_upstream('r50_state_dict_keys.txt')  # 3 levels
    with pytest.raises(ConversionError, match='missing .*input_projs.3'):
        load_converted(_model('maskdino_r50.py'), convert_upstream_state_dict(sd))


@needs_fixtures
def test_untied_alias_and_unknown_keys_are_listed():
    sd = random_upstream('r50_state_dict_keys.txt')
    sd['sem_seg_head.predictor.bbox_embed.4.layers.0.bias'] = torch.zeros(256)
    sd['sem_seg_head.predictor.mystery.weight'] = torch.zeros(1)
    with pytest.raises(ConversionError) as info:
        convert_upstream_state_dict(sd)
    msg = str(info.value)
    assert 'bbox_embed.4.layers.0.bias differs' in msg
    assert 'sem_seg_head.predictor.mystery.weight' in msg


def test_not_a_maskdino_checkpoint():
    with pytest.raises(ConversionError, match='not an upstream Mask DINO checkpoint'):
        describe_upstream({'conv.weight': torch.zeros(1)})


def original_swin_state_dict(embed_dims: int, depths, num_heads, window_size: int,
                             seed: int = 0) -> dict:
    """Random weights under the original Swin Transformer's names, as detectron2's
    ``D2SwinTransformer`` (upstream's Swin-L models) stores them under ``backbone.``; shapes written
    out from the Swin layout (patch 4, MLP ratio 4, patch merging 4C -> 2C, out norms on every
    stage).
    """
    gen = torch.Generator().manual_seed(seed)
    sd = {}

    def add(name, *shape):
        sd['backbone.' + name] = torch.randn(shape, generator=gen)

    add('patch_embed.proj.weight', embed_dims, 3, 4, 4)
    add('patch_embed.proj.bias', embed_dims)
    add('patch_embed.norm.weight', embed_dims)
    add('patch_embed.norm.bias', embed_dims)
    for i, (depth, heads) in enumerate(zip(depths, num_heads)):
        dim = embed_dims * 2**i
        for j in range(depth):
            b = f'layers.{i}.blocks.{j}.'
            for norm in ('norm1', 'norm2'):
                add(b + norm + '.weight', dim)
                add(b + norm + '.bias', dim)
            add(b + 'attn.relative_position_bias_table', (2 * window_size - 1)**2, heads)
            sd['backbone.' + b + 'attn.relative_position_index'] = torch.randint(
                0, (2 * window_size - 1)**2, (window_size**2, window_size**2), generator=gen)
            add(b + 'attn.qkv.weight', 3 * dim, dim)
            add(b + 'attn.qkv.bias', 3 * dim)
            add(b + 'attn.proj.weight', dim, dim)
            add(b + 'attn.proj.bias', dim)
            add(b + 'mlp.fc1.weight', 4 * dim, dim)
            add(b + 'mlp.fc1.bias', 4 * dim)
            add(b + 'mlp.fc2.weight', dim, 4 * dim)
            add(b + 'mlp.fc2.bias', dim)
        if i < len(depths) - 1:
            add(f'layers.{i}.downsample.reduction.weight', 2 * dim, 4 * dim)
            add(f'layers.{i}.downsample.norm.weight', 4 * dim)
            add(f'layers.{i}.downsample.norm.bias', 4 * dim)
        add(f'norm{i}.weight', dim)
        add(f'norm{i}.bias', dim)
    return sd


@needs_fixtures
def test_swin_large_checkpoint_converts_to_the_swin_config():
    """Upstream's Swin-L instance model: the original Swin backbone keys + the released head's keys
    give exactly the plugin Swin-L model's keys, and the backbone loads strictly."""
    head = {k: v for k, v in random_upstream(
        'r50_instance_3s_dowsample1_2048_state_dict_keys.txt').items()
        if not k.startswith('backbone.')}
    swin = original_swin_state_dict(192, (2, 2, 18, 2), (6, 12, 24, 48), 12)
    sd = {**swin, **head}
    assert describe_upstream(sd)['backbone'] == 'swin'
    converted = convert_upstream_state_dict(sd)
    init_default_scope('mmdet')
    cfg = get_repo_config('maskdino/maskdino_swin-l-p4-w12-384-in21k_8xb2-lsj-50e_coco.py')
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    assert set(converted) == set(model.state_dict())
    backbone = {k[len('backbone.'):]: v for k, v in converted.items() if k.startswith('backbone.')}
    model.backbone.load_state_dict(backbone, strict=True)
    state = model.state_dict()
    assert_copied(state, swin, {
        'backbone.stages.2.blocks.17.attn.w_msa.qkv.weight':
        'backbone.layers.2.blocks.17.attn.qkv.weight',
        'backbone.stages.3.blocks.1.ffn.layers.0.0.weight':
        'backbone.layers.3.blocks.1.mlp.fc1.weight',
        'backbone.patch_embed.projection.bias': 'backbone.patch_embed.proj.bias',
    })


def test_swin_patch_merging_matches_the_original_order():
    """Swin merges 2x2 neighbours as cat(x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2],
    x[1::2, 1::2]) -> LayerNorm -> Linear; mmdet's unfold-based merging must give the same numbers
    with the converted weights."""
    from mmdet.models.backbones import SwinTransformer
    init_default_scope('mmdet')
    swin = original_swin_state_dict(8, (1, 1), (1, 2), 2, seed=3)
    converted = convert_upstream_state_dict(swin)
    model = SwinTransformer(embed_dims=8, depths=(1, 1), num_heads=(1, 2), window_size=2,
                            strides=(4, 2), out_indices=(0, 1), pretrain_img_size=16)
    model.load_state_dict({k[len('backbone.'):]: v for k, v in converted.items()}, strict=True)
    x = torch.randn(2, 4 * 6, 8, generator=torch.Generator().manual_seed(4))  # (B, H*W, C), 4x6
    merged, hw = model.stages[0].downsample(x, (4, 6))
    grid = x.view(2, 4, 6, 8)
    cat = torch.cat([grid[:, 0::2, 0::2], grid[:, 1::2, 0::2], grid[:, 0::2, 1::2],
                     grid[:, 1::2, 1::2]], -1).view(2, 6, 32)
    prefix = 'backbone.layers.0.downsample.'
    normed = torch.nn.functional.layer_norm(cat, (32, ), swin[prefix + 'norm.weight'],
                                            swin[prefix + 'norm.bias'])
    expected = normed @ swin[prefix + 'reduction.weight'].T
    assert tuple(hw) == (2, 3)
    assert torch.allclose(merged, expected, atol=1e-5)


def test_unknown_swin_key_is_listed():
    swin = original_swin_state_dict(8, (1, 1), (1, 2), 2)
    swin['backbone.layers.0.blocks.0.attn.mystery'] = torch.zeros(1)
    with pytest.raises(ConversionError, match=r'backbone\.layers\.0\.blocks\.0\.attn\.mystery'):
        convert_upstream_state_dict(swin)
