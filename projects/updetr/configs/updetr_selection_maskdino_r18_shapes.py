# UP-DETR pretext with anchors from patch-conditioned query selection (UPDETRSelectionHead) and
# group-restricted matching (QueryGroupCost): the variant that makes Mask DINO's deformable
# decoder find *its* patch (project README). Masks off: the box-shaped mask target halved the
# pretext AP with learnable anchors. Everything else as updetr_maskdino_r18_shapes.py.
_base_ = './updetr_maskdino_r18_shapes.py'

model = dict(
    panoptic_head=dict(
        type='UPDETRSelectionHead',
        loss_mask=dict(loss_weight=0.0),
        loss_dice=dict(loss_weight=0.0),
        criterion=dict(loss_token_weight=1.0)),
    train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
        dict(type='FocalLossCost', weight=4.0, alpha=0.25, gamma=2.0, eps=1e-8),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='MaskDINOGIoUCost', weight=2.0),
        dict(type='QueryGroupCost', group_size={{_base_.group_size}}, weight=1000.0)
    ])))

# 3000 iterations (the README's run; patch AP every 500)
max_iters = 3000
param_scheduler = dict(end=max_iters, milestones=[2400])
train_cfg = dict(max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=1000, max_keep_ckpts=3))
