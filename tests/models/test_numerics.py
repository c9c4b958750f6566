"""Non-finite inputs, predictions and losses stop with a message naming what, where and when."""
import numpy as np
import pytest
import torch
from mmengine.logging import MessageHub

from mmdet_maskdino.models.utils import (NonFiniteError, check_finite_losses,
                                         training_position)
from mmdet_maskdino.testing import build_small_maskdino, make_det_batch, run_tool

H = W = 64


def _batch(model, training=True):
    square = np.zeros((H, W), bool)
    square[8:30, 10:40] = True
    batch = make_det_batch(model, [[square], [square]], [[1], [2]], training=training)
    for i, sample in enumerate(batch['data_samples']):
        sample.set_metainfo(dict(img_path=f'images/{i:03d}.jpg'))
    return batch


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return build_small_maskdino()


def test_nan_pixels_are_named_in_training_and_prediction(model):
    batch = _batch(model)
    batch['inputs'][1, 0, 3, 4] = float('nan')
    with pytest.raises(NonFiniteError, match=r'input pixels in training.*images/001\.jpg'):
        model(**batch, mode='loss')
    model.eval()
    try:
        batch = _batch(model, training=False)
        batch['inputs'][0, 2, 5, 5] = float('inf')
        with torch.no_grad(), pytest.raises(NonFiniteError,
                                            match=r'in prediction.*images/000\.jpg$|000\.jpg \('):
            model(**batch, mode='predict')
    finally:
        model.train()


def test_diverged_weights_stop_before_the_matcher_with_iteration_and_lr(model):
    hub = MessageHub.get_instance('test_numerics')
    hub.update_info('iter', 41)
    hub.update_scalar('train/lr', 0.25)
    assert training_position() == ' at iteration 42 (lr=0.25)'
    head = model.panoptic_head
    saved = head.cls_branch.weight.detach().clone()
    try:
        with torch.no_grad():
            head.cls_branch.weight[0, 0] = float('inf')
        with pytest.raises(NonFiniteError,
                           match=r'predictions became NaN/inf at iteration 42 \(lr=0\.25\): '
                           r'cls_logits'):
            model(**_batch(model), mode='loss')
    finally:
        with torch.no_grad():
            head.cls_branch.weight.copy_(saved)
        hub.update_info('iter', None)


def test_loss_check_names_the_bad_terms():
    losses = dict(loss_cls=torch.tensor(1.0), d0_loss_bbox=torch.tensor(float('nan')),
                  loss_mask=torch.tensor([0.5, float('inf')]), acc=torch.tensor(3.0))
    with pytest.raises(NonFiniteError, match=r'loss became NaN/inf: d0_loss_bbox, loss_mask\.'):
        check_finite_losses(losses)
    check_finite_losses(dict(loss_cls=torch.tensor(1.0)))  # finite: nothing raised


def test_diverging_lr_stops_training_without_saving_a_diverged_checkpoint(shapes_root, tmp_path):
    work = tmp_path / 'work'
    proc = run_tool([
        'tools/train.py', 'configs/demo/maskdino_r18_shapes.py', '--work-dir', str(work),
        '--cfg-options', f'train_dataloader.dataset.data_root={shapes_root}',
        f'val_dataloader.dataset.data_root={shapes_root}',
        f'test_dataloader.dataset.data_root={shapes_root}',
        f'val_evaluator.ann_file={shapes_root}annotations/instances_val.json',
        f'test_evaluator.ann_file={shapes_root}annotations/instances_val.json',
        'optim_wrapper.optimizer.lr=1e6', 'optim_wrapper.clip_grad=None',
        'train_dataloader.batch_size=2', 'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'train_cfg.max_iters=30', 'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=100'
    ])
    assert proc.returncode != 0
    message = [line for line in proc.stderr.splitlines() if 'NonFiniteError' in line]
    assert message and 'became NaN/inf at iteration' in message[-1] and 'lr=1e+06' in message[-1]
    stopped_at = int(message[-1].split('at iteration ')[1].split()[0])
    saved = sorted(work.glob('iter_*.pth'), key=lambda p: int(p.stem.split('_')[1]))
    assert len(saved) == stopped_at - 1  # every finished iteration, not the failing one
    for path in saved:
        state = torch.load(path, map_location='cpu')['state_dict']
        assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()), path
