"""``MaskDINO(channels_last=True)``: same weights for a seed, same outputs, channels-last convs."""
import numpy as np
import torch

from mmdet_maskdino.testing import build_small_maskdino, make_det_batch


def _square(y0, y1, x0, x1, size=64):
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_channels_last_same_init_and_outputs_and_layout():
    models = {}
    for flag in (False, True):
        torch.manual_seed(0)
        model = build_small_maskdino()
        model.channels_last = flag
        model._set_conv_memory_format()
        model.init_weights()
        models[flag] = model.eval()
    plain, fast = models[False], models[True]
    conv_weights = [p for n, p in fast.named_parameters() if p.dim() == 4]
    spatial = [p for p in conv_weights if p.shape[-1] > 1]  # 1x1 kernels: both layouts at once
    assert len(spatial) > 10 and all(
        p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
        for p in spatial)
    for (name, a), b in zip(plain.state_dict().items(), fast.state_dict().values()):
        assert torch.equal(a, b), name  # same values whatever the layout
    batch = make_det_batch(plain, [[_square(5, 30, 8, 40)]], [[1]], training=False)
    with torch.no_grad():
        out_plain = plain(**batch, mode='tensor')
        out_fast = fast(**batch, mode='tensor')
    for a, b in zip(out_plain, out_fast):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=1e-4)
