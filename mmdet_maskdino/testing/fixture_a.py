"""The authors' inference pass (``../shared/fixtures/fixture_A.pt``, FIXTURES.md): the plugin's head
with the recorded weights, and its outputs in upstream's layout."""
import os.path as osp
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmdet.registry import MODELS
from ..converters import convert_upstream_state_dict, describe_upstream, load_converted
from ..models.utils import mask_logits
from .helpers import REPO_ROOT

FIXTURE_A = osp.join(REPO_ROOT, '..', 'shared', 'fixtures', 'fixture_A.pt')
HEAD_CONFIG_A = osp.join(REPO_ROOT, 'tests', 'data', 'fixture_a_head.py')


def build_fixture_a_head(fx: dict):
    """The plugin's head of ``tests/data/fixture_a_head.py`` (eval mode) with the fixture's
    upstream weights converted into it."""
    init_default_scope('mmdet')
    model = MODELS.build(Config.fromfile(HEAD_CONFIG_A).head).eval()
    upstream = {k if k.startswith('sem_seg_head.') else 'sem_seg_head.' + k: v.float()
                for k, v in fx['state_dict'].items()}
    info = describe_upstream(upstream)
    assert (info['num_levels'], info['num_extra_levels'], info['level_order']) == \
        (3, 0, 'high2low'), info
    load_converted(model, convert_upstream_state_dict(upstream, head_prefix=''))
    return model


def run_fixture_a(head, fx: dict, box_init: str = 'bitmask',
                  autocast_dtype: Optional[torch.dtype] = None) -> Dict:
    """The head's eval forward on the recorded features as upstream's output dict (masks only
    where upstream records them), optionally under CPU autocast (``autocast_dtype``); outputs
    float32."""
    head.box_init = type(head.box_init)(box_init)
    feats = [fx['inputs']['features'][k].float() for k in ('res2', 'res3', 'res4', 'res5')]
    with torch.no_grad(), torch.autocast('cpu', dtype=autocast_dtype or torch.bfloat16,
                                         enabled=autocast_dtype is not None):
        out = head(feats)

        def as_dict(sets, i, with_masks):
            return dict(pred_logits=sets.cls_logits[i].float(), pred_boxes=sets.boxes[i].float(),
                        pred_masks=mask_logits(sets.mask_embeds[i], out.mask_features).float()
                        if with_masks else None)

        layers = out.layers
        return dict(as_dict(layers, -1, True),
                    aux_outputs=[as_dict(layers, i, False) for i in range(len(layers) - 1)],
                    interm_outputs=as_dict(out.interm, 0, True))
