# The CPU demo model on the generated shapes dataset's panoptic split (4 things + 2 stuff: sky, ground),
# with the same diff as configs/maskdino/maskdino_r50_8xb2-lsj-50e_coco-panoptic.py: targets are the
# panoptic PNGs' segments in annotation order, box init off, panoptic + instance + semantic inference,
# evaluated with CocoPanopticMetric (PQ), CocoMetric (bbox/segm) and SemSegMetric (mIoU).
_base_ = './maskdino_r18_shapes.py'

num_things_classes = 4
num_stuff_classes = 2
image_size = (128, 128)
model = dict(
    data_preprocessor=dict(
        pad_seg=True, seg_pad_value=255,
        batch_augments=[
            dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
                 mask_pad_value=0, pad_seg=True, seg_pad_value=255)
        ]),
    panoptic_head=dict(
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes,
        box_init='no'),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes),
    # Stuff segments' boxes are matched and supervised like things' (upstream's released panoptic
    # configs: PANO_BOX_LOSS False). Things only: panoptic_head.criterion=dict(
    # type='MaskDINOCriterion', thing_boxes_only=True) and ThingBoxCost around the two box costs of
    # train_cfg.assigner.match_costs.
    test_cfg=dict(panoptic_on=True, semantic_on=True, instance_on=True))

data_root = 'data/shapes/'
metainfo = dict(
    classes=('circle', 'square', 'triangle', 'cross', 'sky', 'ground'),
    thing_classes=('circle', 'square', 'triangle', 'cross'),
    stuff_classes=('sky', 'ground'))
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadPanopticSegments', with_seg=True),  # segments_info order, as upstream
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True, keep_empty=False),
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
    dataset=dict(
        type='CheckedCocoPanopticDataset',  # annotations, images and PNGs checked once
        metainfo=metainfo,
        ann_file='annotations/panoptic_train.json',
        data_prefix=dict(img='train/', seg='annotations/panoptic_train/'),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type='CheckedCocoPanopticDataset',  # checked as the training split
        metainfo=metainfo,
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoPanopticMetric', ann_file=data_root + 'annotations/panoptic_val.json',
         seg_prefix=data_root + 'annotations/panoptic_val/'),
    dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val.json',
         metric=['bbox', 'segm']),
    dict(type='SemSegMetric', iou_metrics=['mIoU'])
]
test_evaluator = val_evaluator
