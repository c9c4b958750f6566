# mmdet's own Mask R-CNN (the CNN baseline of the model-zoo comparison), shrunk like the CPU demo models:
# ResNet-18 from scratch, 64-channel FPN and heads, 4 classes. Its optimiser is Mask R-CNN's own (SGD
# 0.02). The dataset, image size, schedule and seed are set by tools/analysis_tools/zoo_compare.py,
# the same for every model it compares (this file keeps mmdet's COCO data section).
_base_ = 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py'

custom_imports = dict(imports=['mmdet_maskdino'], allow_failed_imports=False)
runner_type = 'mmdet.CheckedRunner'

num_classes = 4
channels = 64
model = dict(
    backbone=dict(depth=18, init_cfg=None),  # no pretrained weights offline
    neck=dict(in_channels=[64, 128, 256, 512], out_channels=channels),
    rpn_head=dict(in_channels=channels, feat_channels=channels),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=channels),
        bbox_head=dict(in_channels=channels, fc_out_channels=256, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=channels),
        mask_head=dict(in_channels=channels, conv_out_channels=channels,
                       num_classes=num_classes)))
metainfo = dict(classes=('circle', 'square', 'triangle', 'cross'))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = val_dataloader
randomness = dict(seed=0)
