# A deterministic tiny detector for the resume test: RetinaNet has no random sampling in its loss, and
# the pipeline has no random flip, so 4 iterations == 2 + resume + 2 to float tolerance.
_base_ = 'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_maskdino'], allow_failed_imports=False)
runner_type = 'mmdet.CheckedRunner'
randomness = dict(seed=0, deterministic=False)

model = dict(backbone=dict(init_cfg=None), bbox_head=dict(num_classes=4))
metainfo = dict(classes=('circle', 'square', 'triangle', 'cross'))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(64, 64), keep_ratio=True),
    dict(type='PackDetInputs')
]
train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    dataset=dict(
        data_root='data/shapes/',
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=pipeline))
val_dataloader = None
val_cfg = None
val_evaluator = None
test_dataloader = None
test_cfg = None
test_evaluator = None
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-3))
param_scheduler = []
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4)
default_hooks = dict(
    logger=dict(interval=1), checkpoint=dict(interval=2, by_epoch=False, max_keep_ckpts=5))
log_processor = dict(by_epoch=False, window_size=1)
