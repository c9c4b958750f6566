# UP-DETR pretraining of Mask DINO R50's transformer on unlabelled COCO train2017 images: the
# real recipe (UP-DETR: 10 query patches of 128x128 per image, a frozen ImageNet ResNet-50,
# feature reconstruction, 60 epochs on ImageNet or COCO). Fine-tune afterwards with
#   python projects/updetr/tools/pretrain_to_finetune.py work_dirs/.../iter_N.pth \
#       configs/maskdino_r50.py --out updetr_r50_init.pth
#   python tools/train.py configs/maskdino_r50.py --cfg-options load_from=updetr_r50_init.pth
_base_ = '../../../configs/maskdino_r50.py'

custom_imports = dict(imports=['mmdet_maskdino', 'projects.updetr.updetr'],
                      allow_failed_imports=False)

num_patches = 10
mask_weight = 5.0  # the patch as a box-shaped mask target; 0.0 switches it off
image_size = (1024, 1024)

model = dict(
    type='UPDETR',
    backbone=dict(frozen_stages=4, norm_eval=True,
                  init_cfg=dict(type='Pretrained', checkpoint='torchvision://resnet50')),
    panoptic_head=dict(
        type='UPDETRHead',
        num_things_classes=1,
        num_queries=100,  # 10 per patch group
        num_patches=num_patches,
        patch_feat_dims=2048,
        feature_drop=0.1,
        dn_cfg=None,
        loss_mask=dict(loss_weight=mask_weight),
        loss_dice=dict(loss_weight=mask_weight),
        criterion=dict(type='UPDETRCriterion', patch_feat_dims=2048, embed_dims=256,
                       loss_rec_weight=1.0)),
    panoptic_fusion_head=dict(num_things_classes=1),
    train_cfg=dict(assigner=dict(type='HungarianAssigner', match_costs=[
        dict(type='FocalLossCost', weight=4.0, alpha=0.25, gamma=2.0, eps=1e-8),
        dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
        dict(type='MaskDINOGIoUCost', weight=2.0),
        dict(type='PointMaskBCECost', weight=mask_weight),
        dict(type='DiceCost', weight=mask_weight, pred_act=True, eps=1.0)
    ])))

data_root = 'data/coco/'
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), resize_type='Resize',
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', allow_negative_crop=True),
    dict(type='SampleQueryPatches', num_patches=num_patches, patch_size=128),
    dict(type='PackPatchInputs')
]
val_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='SampleQueryPatches', num_patches=num_patches, patch_size=128, seed=0,
         flip_prob=0.0),
    dict(type='PackPatchInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(_delete_=True, type='FolderImageDataset', data_root=data_root,
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(_delete_=True, type='FolderImageDataset', data_root=data_root,
                 data_prefix=dict(img='val2017/'), indices=500, pipeline=val_pipeline,
                 test_mode=True))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='PatchLocalisationMetric')
test_evaluator = val_evaluator
