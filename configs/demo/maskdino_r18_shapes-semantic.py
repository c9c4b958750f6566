# The CPU demo model as upstream's one-stage semantic model, on the generated shapes dataset's semantic
# split (6 classes, all treated as stuff), with the same diff as
# configs/maskdino/maskdino_r50_8xb2-160k_ade20k-semantic.py: learnable queries, no query selection,
# softmax CE classification with no-object weight 0.1, semantic inference, SemSegMetric (mIoU).
_base_ = './maskdino_r18_shapes.py'

num_things_classes = 0
num_stuff_classes = 6
num_classes = num_things_classes + num_stuff_classes
image_size = (128, 128)
model = dict(
    data_preprocessor=dict(
        pad_seg=True, seg_pad_value=255,
        batch_augments=[
            dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
                 mask_pad_value=0, pad_seg=True, seg_pad_value=255)
        ]),
    panoptic_head=dict(
        num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
        two_stage=False,
        box_init='no',
        loss_cls=dict(_delete_=True, type='CrossEntropyLoss', use_sigmoid=False, loss_weight=4.0,
                      reduction='mean', class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes),
    train_cfg=dict(
        assigner=dict(match_costs=[
            dict(type='ClassificationCost', weight=4.0),
            dict(type='BBoxL1Cost', weight=5.0, box_format='xywh'),
            dict(type='MaskDINOGIoUCost', weight=2.0),
            dict(type='PointMaskBCECost', weight=5.0),  # = CrossEntropyLossCost(use_sigmoid)
            dict(type='DiceCost', weight=5.0, pred_act=True, eps=1.0)
        ])),
    test_cfg=dict(_delete_=True, panoptic_on=False, semantic_on=True, instance_on=False))

data_root = 'data/shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle', 'cross', 'sky', 'ground'))
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=False, with_mask=False, with_seg=True),
    dict(type='PackDetInputs', meta_keys=('img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    batch_sampler=None,  # mmdet's AspectRatioBatchSampler needs COCO's width/height fields
    dataset=dict(
        _delete_=True,
        # a plain folder of images + label PNGs with our class names; label maps checked once
        type='CheckedADE20KSegDataset',
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='train', seg_map_path='annotations/semantic_train'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='CheckedADE20KSegDataset',  # checked as the training split
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(img_path='val', seg_map_path='annotations/semantic_val'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(_delete_=True, type='SemSegMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
embed_multi = dict(lr_mult=1.0, decay_mult=0.0)  # learnable queries: no weight decay
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys=dict(query_feat=embed_multi, query_embed=embed_multi)))
