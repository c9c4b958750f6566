# Mask DINO R50, COCO panoptic segmentation (upstream's panoptic R50: 133 classes = 80 things + 53 stuff,
# box init off; 53.0 PQ / 44.3 mask AP / 48.8 box AP on val2017). A thin diff of the instance model: the
# targets are the panoptic PNG's segments in the annotation's order (LoadPanopticSegments), boxes from
# masks (stuff boxes matched and supervised like things' boxes, as upstream's released config), and one
# model answers all three tasks at test time (CocoPanopticMetric, CocoMetric bbox+segm on thing classes,
# SemSegMetric mIoU).
_base_ = './maskdino_r50_8xb2-lsj-50e_coco.py'

num_things_classes = 80
num_stuff_classes = 53
image_size = (1024, 1024)
batch_augments = [
    dict(type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
         mask_pad_value=0, pad_seg=True, seg_pad_value=255)
]
model = dict(
    data_preprocessor=dict(pad_seg=True, seg_pad_value=255, batch_augments=batch_augments),
    panoptic_head=dict(
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes,
        box_init='no'),
    panoptic_fusion_head=dict(
        num_things_classes=num_things_classes, num_stuff_classes=num_stuff_classes),
    # Stuff segments' boxes are matched and supervised like things' (upstream's released panoptic
    # configs: PANO_BOX_LOSS False). Things only: panoptic_head.criterion=dict(
    # type='MaskDINOCriterion', thing_boxes_only=True) and ThingBoxCost around the two box costs of
    # train_cfg.assigner.match_costs.
    test_cfg=dict(panoptic_on=True, semantic_on=True, instance_on=True, object_mask_thr=0.25,
                  iou_thr=0.8, temperature=0.06))

data_root = 'data/coco/'
train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args={{_base_.backend_args}}),
    # every non-crowd segment (things and stuff) as an instance in segments_info order, boxes from
    # masks (upstream's targets; needs CheckedCocoPanopticDataset, which records iscrowd)
    dict(type='LoadPanopticSegments', with_seg=True, backend_args={{_base_.backend_args}}),
    dict(type='RandomFlip', prob=0.5),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), resize_type='Resize',
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=image_size, crop_type='absolute', recompute_bbox=True,
         allow_negative_crop=True),
    # drop segments cropped away; an image left with no segment is replaced
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True, keep_empty=False),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True, backend_args={{_base_.backend_args}}),
    dict(type='Resize', scale=(1333, 800), keep_ratio=True),
    dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True,
         backend_args={{_base_.backend_args}}),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
]
train_dataloader = dict(
    dataset=dict(
        type='CheckedCocoPanopticDataset',  # annotations, images and PNGs checked once
        data_root=data_root,
        ann_file='annotations/panoptic_train2017.json',
        data_prefix=dict(img='train2017/', seg='annotations/panoptic_train2017/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=32),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type='CheckedCocoPanopticDataset',  # checked as the training split
        data_root=data_root,
        ann_file='annotations/panoptic_val2017.json',
        data_prefix=dict(img='val2017/', seg='annotations/panoptic_val2017/'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = [
    dict(type='CocoPanopticMetric', ann_file=data_root + 'annotations/panoptic_val2017.json',
         seg_prefix=data_root + 'annotations/panoptic_val2017/',
         backend_args={{_base_.backend_args}}),
    dict(type='CocoMetric', ann_file=data_root + 'annotations/instances_val2017.json',
         metric=['bbox', 'segm'], backend_args={{_base_.backend_args}}),
    dict(type='SemSegMetric', iou_metrics=['mIoU'])
]
test_evaluator = val_evaluator
