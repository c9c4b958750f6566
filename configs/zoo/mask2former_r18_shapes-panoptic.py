# mmdet's own Mask2Former on the shapes panoptic split (4 things + 2 stuff), the same sizes as
# configs/demo/mask2former_r18_shapes.py: the panoptic baseline of the model-zoo comparison, beside
# configs/demo/maskdino_r18_shapes-panoptic.py.
_base_ = '../demo/mask2former_r18_shapes.py'

num_things_classes = 4
num_stuff_classes = 2
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
        num_stuff_classes=num_stuff_classes,
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_stuff_classes=num_stuff_classes),
    test_cfg=dict(panoptic_on=True, semantic_on=False, instance_on=True))
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'cross', 'sky', 'ground'),
    thing_classes=('circle', 'square', 'triangle', 'cross'),
    stuff_classes=('sky', 'ground'))
data_root = 'data/shapes/'
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(type='CocoPanopticDataset', metainfo=metainfo,
                 ann_file='annotations/panoptic_train.json',
                 data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(type='CocoPanopticDataset', metainfo=metainfo,
                 ann_file='annotations/panoptic_val.json',
                 data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoPanopticMetric', ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'annotations/panoptic_val/'),
    dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val.json',
         metric=['bbox', 'segm'])
]
test_evaluator = val_evaluator
