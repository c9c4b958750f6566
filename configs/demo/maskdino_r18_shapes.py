# Mask DINO shrunk for a CPU run on the synthetic shapes dataset
# (tools/dataset_converters/make_shapes_dataset.py): ResNet-18 from scratch, 64 channels, 4 levels
# (C3-C5 + 1/64), 2 encoder / 3 decoder layers, 30 queries, DN 20, 128x128 images. The same recipe
# otherwise (mask2box, hybrid matching, point-sampled losses). This is the README's main job.
_base_ = '../maskdino_r50.py'

num_things_classes = 4
image_size = (128, 128)
embed_dims = 64
num_levels = 4
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
             mask_pad_value=0, pad_seg=False)
    ]),
    backbone=dict(depth=18, init_cfg=None),  # no pretrained weights offline
    panoptic_head=dict(
        num_things_classes=num_things_classes,
        num_queries=30,
        embed_dims=embed_dims,
        dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
        pixel_decoder=dict(
            in_channels=[64, 128, 256, 512],
            mask_dims=embed_dims,
            encoder=dict(
                num_layers=2,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                    ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128))),
            positional_encoding=dict(num_feats=embed_dims // 2)),
        transformer_decoder=dict(
            num_layers=3,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=4),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128)))),
    panoptic_fusion_head=dict(num_things_classes=num_things_classes),
    train_cfg=dict(num_points=1024),
    test_cfg=dict(max_per_image=30))

# ---- synthetic shapes dataset (COCO instance format) ----
data_root = 'data/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle', 'cross'))
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=False),
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=2,
    dataset=dict(
        data_root=data_root,
        metainfo=metainfo,
        ann_file='annotations/instances_val.json',
        data_prefix=dict(img='val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val.json')
test_evaluator = val_evaluator

# ---- schedule: a few minutes on a laptop CPU (fp32; --amp: bf16 autocast on a CPU) ----
optim_wrapper = dict(type='OptimWrapper', optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=0.1))
max_iters = 300
param_scheduler = dict(end=max_iters, milestones=[250], _delete_=True, type='MultiStepLR',
                       begin=0, by_epoch=False, gamma=0.1)
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=20),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=1),
    visualization=dict(type='DetVisualizationHook', draw=False))
log_processor = dict(window_size=20)

randomness = dict(seed=0)  # reproducible demo and benchmark runs
