# Mask DINO R50, COCO instance segmentation: upstream's released default model
# (4 levels: C3-C5 + an extra 1/64 level, encoder FFN 2048, 300 queries, mask2box box init, DN 100 with
# noise 0.4, LSJ 1024, AdamW 1e-4 / wd 0.05, backbone lr x0.1, grad clip 0.01, 50 epochs at 8 GPUs x 2).
# Upstream: 46.3 mask AP / 51.7 box AP on val2017.
_base_ = ['mmdet::_base_/datasets/coco_instance.py', 'mmdet::_base_/default_runtime.py']

custom_imports = dict(imports=['mmdet_maskdino'], allow_failed_imports=False)
runner_type = 'mmdet.CheckedRunner'  # validates types, data root and annotation files first

num_things_classes = 80
num_stuff_classes = 0
num_classes = num_things_classes + num_stuff_classes
image_size = (1024, 1024)
embed_dims = 256
num_levels = 4  # C3, C4, C5 + one extra 1/64 level
batch_augments = [
    dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
         mask_pad_value=0, pad_seg=False)
]
data_preprocessor = dict(
    type='DetDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_size_divisor=32,
    pad_mask=True,
    mask_pad_value=0,
    pad_seg=False,
    batch_augments=batch_augments)
model = dict(
    type='MaskDINO',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(0, 1, 2, 3),
        frozen_stages=-1,  # upstream resolved config: BACKBONE.FREEZE_AT 0 (BN frozen below)
        norm_cfg=dict(type='BN', requires_grad=False),  # frozen BN
        norm_eval=True,
        style='pytorch',
        init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    panoptic_head=dict(
        type='MaskDINOHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        num_queries=300,
        embed_dims=embed_dims,
        box_init='mask2box',  # mask-enhanced anchor box initialisation
        initial_pred=True,
        two_stage=True,  # unified query selection (False: learnable queries, the ADE20K model)
        dn_cfg=dict(  # positive-only unified denoising (DN-DETR style)
            label_noise_scale=0.4,
            box_noise_scale=0.4,
            group_cfg=dict(dynamic=True, num_dn_queries=100),
            contrastive=False),
        pixel_decoder=dict(
            type='MaskDINOPixelDecoder',
            in_channels=[256, 512, 1024, 2048],
            mask_dims=256,
            num_extra_levels=1,
            level_order='low2high',
            norm_cfg=dict(type='GN', num_groups=32),
            encoder=dict(
                num_layers=6,
                layer_cfg=dict(
                    self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels,
                                       num_points=4, dropout=0.0, batch_first=True),
                    ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=2048, num_fcs=2,
                                 ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True)))),
            positional_encoding=dict(num_feats=embed_dims // 2, normalize=True)),
        transformer_decoder=dict(
            num_layers=9,
            return_intermediate=True,
            ref_eps=1e-5,  # 1e-3 in mmdet's DINO
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0),
                cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels,
                                    num_points=4, dropout=0.0, batch_first=True),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=2048, num_fcs=2,
                             ffn_drop=0.0, act_cfg=dict(type='ReLU', inplace=True)))),
        loss_cls=dict(type='FocalLoss', use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=4.0),
        loss_bbox=dict(type='L1Loss', loss_weight=5.0),
        loss_iou=dict(type='MaskDINOGIoULoss', loss_weight=2.0),
        loss_mask=dict(type='CrossEntropyLoss', use_sigmoid=True, reduction='mean',
                       loss_weight=5.0),
        loss_dice=dict(type='DiceLoss', use_sigmoid=True, activate=True, reduction='mean',
                       naive_dice=True, eps=1.0, loss_weight=5.0)),
    panoptic_fusion_head=dict(
        type='MaskDINOFusionHead',
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        loss_panoptic=None,
        init_cfg=None),
    train_cfg=dict(
        num_points=12544,
        oversample_ratio=3.0,
        importance_sample_ratio=0.75,
        assigner=dict(  # hybrid matching: class + box + mask
            type='HungarianAssigner',
            match_costs=[
                dict(type='FocalLossCost', weight=4.0, alpha=0.25, gamma=2.0,
                     eps=1e-8),  # 1e-12 in mmdet, 1e-8 upstream
                dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
                dict(type='MaskDINOGIoUCost', weight=2.0),
                dict(type='PointMaskBCECost', weight=5.0),  # = CrossEntropyLossCost(use_sigmoid)
                dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
            ])),
    test_cfg=dict(
        panoptic_on=False, semantic_on=False, instance_on=True, max_per_image=100),
    init_cfg=None)

# dataset: LSJ (scale 0.1-2.0, fixed-size crop, boxes recomputed from the cropped masks)
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args={{_base_.backend_args}}),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), resize_type='Resize',
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    # CocoDataset + annotations and image sizes checked once before training (data_check='error');
    # data_check='skip' drops bad annotations / images and logs the count instead of stopping
    dataset=dict(type='CheckedCocoDataset', pipeline=train_pipeline))
# the val / test split checked the same way (a bad annotation or a missing image is an error naming
# json, image and annotation before training starts, not when evaluation reaches it)
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset', pipeline=test_pipeline))
test_dataloader = val_dataloader

# optimizer (upstream's build_optimizer): AdamW, backbone lr x0.1, no weight decay on norm layers and
# nn.Embedding (the DN label embedding); everything else, level_embed included (a plain Parameter),
# decays 0.05; full-model clip 0.01
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)
optim_wrapper = dict(
    # mixed precision as upstream: fp16 autocast + loss scaling on a GPU (MMEngine's
    # AmpOptimWrapper), bf16 autocast on a CPU; the pixel decoder and the decoder layers stay fp32
    type='CPUCapableAmpOptimWrapper',
    optimizer=dict(type='AdamW', lr=0.0001, weight_decay=0.05, eps=1e-8, betas=(0.9, 0.999)),
    paramwise_cfg=dict(
        custom_keys={
            'backbone': dict(lr_mult=0.1, decay_mult=1.0),
            'label_embedding': embed_multi,
        },
        norm_decay_mult=0.0),
    clip_grad=dict(max_norm=0.01, norm_type=2))

# schedule: 50 epochs of COCO train2017 at batch 16 = 368,750 iterations
max_iters = 368750
param_scheduler = dict(
    type='MultiStepLR', begin=0, end=max_iters, by_epoch=False, milestones=[327778, 355092],
    gamma=0.1)
interval = 5000
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=interval)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
default_hooks = dict(
    # atomic writes, old checkpoints removed after the new one is complete, RNG states saved
    checkpoint=dict(type='SafeCheckpointHook', by_epoch=False, save_last=True, max_keep_ckpts=3,
                    interval=interval))
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=False)
auto_scale_lr = dict(enable=False, base_batch_size=16)
