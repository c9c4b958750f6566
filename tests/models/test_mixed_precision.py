"""Mixed precision as upstream: under autocast the backbone computes in half precision, the pixel
decoder (encoder included) and every decoder layer in fp32 (upstream's ``autocast(enabled=False)``
around them); the heads outside the layers stay under autocast, as upstream's. A bf16-autocast
training step's losses stay close to fp32's."""
from collections import defaultdict

import numpy as np
import pytest
import torch
from torch import nn

from mmdet_maskdino.testing import build_small_maskdino, make_det_batch

COMPUTING = (nn.Conv2d, nn.Linear, nn.MultiheadAttention, nn.LayerNorm, nn.GroupNorm)


def _rect(y0, y1, x0, x1):
    m = np.zeros((64, 64), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture(scope='module')
def model_and_batch():
    torch.manual_seed(0)
    model = build_small_maskdino(num_queries=20, decoder_layers=3)
    model.train()
    batch = make_det_batch(model, [[_rect(4, 30, 6, 40), _rect(32, 60, 10, 20)],
                                   [_rect(0, 64, 50, 64)]], [[1, 3], [2]])
    return model, batch


def _output_dtypes(model, batch, region_of) -> dict:
    """``{region: {dtype, ...}}`` of every computing module's output in one bf16-autocast loss."""
    seen = defaultdict(set)
    hooks = []
    for name, module in model.named_modules():
        region = region_of(name)
        if region and isinstance(module, COMPUTING):
            def record(mod, args, out, region=region):
                out = out[0] if isinstance(out, tuple) else out
                seen[region].add(out.dtype)
            hooks.append(module.register_forward_hook(record))
    try:
        with torch.autocast('cpu', dtype=torch.bfloat16):
            model(**batch, mode='loss')
    finally:
        for h in hooks:
            h.remove()
    return dict(seen)


def _region(name: str):
    if name.startswith('backbone.'):
        return 'backbone'
    if name.startswith('panoptic_head.pixel_decoder.'):
        return 'pixel decoder'
    if name.startswith('panoptic_head.decoder.layers.'):
        return 'decoder layers'
    if name.startswith(('panoptic_head.cls_branch', 'panoptic_head.mask_embed',
                        'panoptic_head.decoder.ref_point_head')):
        return 'heads'
    return None


def test_pixel_decoder_and_decoder_layers_compute_in_fp32_under_bf16(model_and_batch):
    dtypes = _output_dtypes(*model_and_batch, _region)
    assert dtypes['backbone'] == {torch.bfloat16}
    assert dtypes['pixel decoder'] == {torch.float32}  # projections, encoder, segmentation branch
    assert dtypes['decoder layers'] == {torch.float32}  # self-attn, deformable attn, FFN, norms
    assert dtypes['heads'] == {torch.bfloat16}  # class / mask heads, query-position MLP


def test_bf16_training_step_losses_close_to_fp32(model_and_batch):
    """Same weights, same random draws (DN noise, points): every loss term within 2.5e-2 and the
    total within 1e-2 relative (measured: total 3.4e-3, worst term 8.0e-3 -- the class losses of
    the last layers; bf16 keeps 8 significand bits, a unit roundoff of 3.9e-3)."""
    model, batch = model_and_batch

    def losses(amp: bool) -> dict:
        torch.manual_seed(5)
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            return {k: v.item() for k, v in model(**batch, mode='loss').items()}

    fp32, bf16 = losses(False), losses(True)
    assert fp32.keys() == bf16.keys()
    assert all(np.isfinite(v) for v in bf16.values())
    total32, total16 = sum(fp32.values()), sum(bf16.values())
    assert abs(total16 - total32) <= 1e-2 * abs(total32)
    far = {k: (fp32[k], bf16[k]) for k in fp32
           if abs(fp32[k] - bf16[k]) > 2.5e-2 * max(abs(fp32[k]), 1e-2)}
    assert not far, far
