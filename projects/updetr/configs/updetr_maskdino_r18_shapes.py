# UP-DETR pretraining of the demo Mask DINO's transformer on unlabelled shapes images
# (tools/dataset_converters/make_shapes_dataset.py; annotations are not read).
# Frozen backbone: UP-DETR freezes an ImageNet-pretrained CNN. Offline, no ImageNet weights can
# be downloaded, so the stand-in is the ResNet-18 of a demo Mask DINO trained on a *different*
# generated shapes dataset (seed 1234: other images, as ImageNet is other images than COCO);
# see the project README for the commands. A randomly initialised frozen ResNet-18 was tried
# first: its pooled features barely tell patches apart (README). The fine-tuning comparison
# starts both arms from the same backbone. The real recipe is updetr_maskdino_r50_coco.py.
_base_ = '../../../configs/demo/maskdino_r18_shapes.py'

custom_imports = dict(imports=['mmdet_maskdino', 'projects.updetr.updetr'],
                      allow_failed_imports=False)

backbone_checkpoint = 'work_dirs/updetr_backbone/iter_300.pth'
num_patches = 10
group_size = 3  # queries per patch group
patch_size = 64  # UP-DETR: 128 on 800-pixel images; the demo images are 128x128
image_size = (128, 128)
# the patch as a box-shaped mask target (Mask DINO's unified view). Edit here; from the command line
# set the four weights instead (mask_weight is computed when this file is read; README)
mask_supervision = True
mask_weight = 5.0 if mask_supervision else 0.0

model = dict(
    type='UPDETR',
    backbone=dict(frozen_stages=4, norm_eval=True,
                  init_cfg=dict(_delete_=True, type='Pretrained', checkpoint=backbone_checkpoint,
                                prefix='backbone.')),
    panoptic_head=dict(
        type='UPDETRHead',
        num_things_classes=1,
        num_queries=num_patches * group_size,
        num_patches=num_patches,
        patch_feat_dims=512,
        feature_drop=0.1,
        dn_cfg=None,
        loss_mask=dict(loss_weight=mask_weight),
        loss_dice=dict(loss_weight=mask_weight),
        criterion=dict(type='UPDETRCriterion', patch_feat_dims=512, embed_dims=64,
                       loss_rec_weight=1.0)),
    panoptic_fusion_head=dict(num_things_classes=1),
    # Mask DINO's hybrid costs; the mask costs follow the mask supervision switch
    train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
        dict(type='FocalLossCost', weight=4.0, alpha=0.25, gamma=2.0, eps=1e-8),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='MaskDINOGIoUCost', weight=2.0),
        dict(type='PointMaskBCECost', weight=mask_weight),
        dict(type='DiceCost', weight=mask_weight, pred_act=True, eps=1.0)
    ])))

data_root = 'data/shapes_512_128/'
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='SampleQueryPatches', num_patches=num_patches, patch_size=patch_size),
    dict(type='PackPatchInputs')
]
val_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='SampleQueryPatches', num_patches=num_patches, patch_size=patch_size, seed=0,
         flip_prob=0.0),
    dict(type='PackPatchInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_size=4,
    dataset=dict(_delete_=True, type='FolderImageDataset', data_root=data_root,
                 data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='FolderImageDataset', data_root=data_root,
                 data_prefix=dict(img='val/'), indices=64, pipeline=val_pipeline, test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='PatchLocalisationMetric')
test_evaluator = val_evaluator

max_iters = 1000
param_scheduler = dict(end=max_iters, milestones=[800])
train_cfg = dict(max_iters=max_iters, val_interval=200)
default_hooks = dict(checkpoint=dict(interval=max_iters, max_keep_ckpts=1))
