"""Ground truth turned into head outputs goes through the fusion head and mmdet's metrics:
PQ 100, mIoU 100 and mask AP 1.0 on the generated shapes dataset (panoptic split)."""
import torch
from mmengine.registry import init_default_scope

from mmdet.evaluation import CocoMetric, CocoPanopticMetric, SemSegMetric
from mmdet.registry import DATASETS
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmdet_maskdino.datasets.synthetic_shapes import metainfo
from mmdet_maskdino.models.utils import stuff_targets
from mmdet_maskdino.models.seg_heads import MaskDINOFusionHead

BIG = 20.0


def _dataset(root: str):
    init_default_scope('mmdet')
    return DATASETS.build(dict(
        type='CocoPanopticDataset', data_root=root, metainfo=metainfo(with_stuff=True),
        ann_file='annotations/panoptic_val.json',
        data_prefix=dict(img='val/', seg='annotations/panoptic_val/'), test_mode=True,
        pipeline=[
            dict(type='LoadImageFromFile'),
            dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True),
            dict(type='PackDetInputs',
                 meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
        ]))


def _outputs_from_gt(sample, num_things: int, num_classes: int, split_stuff: bool):
    """Head outputs that say exactly the GT: one confident query per thing and per stuff class
    (each stuff class split over two queries when ``split_stuff``, so the fusion must merge them);
    masks at full size, where the fusion head's resize is the identity."""
    h, w = sample.metainfo['img_shape'][:2]
    labels = list(sample.gt_instances.labels.tolist())
    masks = list(sample.gt_instances.masks.to_tensor(torch.bool, 'cpu'))
    boxes = list(sample.gt_instances.bboxes.tensor if hasattr(sample.gt_instances.bboxes, 'tensor')
                 else sample.gt_instances.bboxes)
    stuff_labels, stuff_masks = stuff_targets(sample.gt_sem_seg.sem_seg[0], num_things,
                                              num_classes)
    for label, mask in zip(stuff_labels.tolist(), stuff_masks):
        parts = [mask]
        if split_stuff:
            rows = mask.any(1).nonzero()[:, 0]
            cut = int(rows.float().median()) + 1
            parts = [mask.clone(), mask.clone()]
            parts[0][cut:] = False
            parts[1][:cut] = False
        for part in parts:
            if part.any():
                labels.append(label)
                masks.append(part)
                boxes.append(torch.zeros(4))
    cls = torch.full((len(labels), num_classes), -BIG)
    cls[torch.arange(len(labels)), torch.tensor(labels, dtype=torch.long)] = BIG
    mask_logits = torch.where(torch.stack(masks), BIG, -BIG).float()
    norm = torch.tensor([w, h, w, h], dtype=torch.float)
    boxes = bbox_xyxy_to_cxcywh(torch.stack([torch.as_tensor(b, dtype=torch.float)
                                             for b in boxes]) / norm)
    return cls, mask_logits, boxes


def test_ground_truth_as_prediction_gives_pq_100_miou_100_ap_1(shapes_root, tmp_path):
    dataset = _dataset(shapes_root)
    meta = dataset.metainfo
    num_things, num_classes = len(meta['thing_classes']), len(meta['classes'])
    head = MaskDINOFusionHead(
        num_things_classes=num_things, num_stuff_classes=num_classes - num_things,
        test_cfg=dict(panoptic_on=True, semantic_on=True, instance_on=True, max_per_image=100))
    pq = CocoPanopticMetric(ann_file=shapes_root + 'annotations/panoptic_val.json',
                            seg_prefix=shapes_root + 'annotations/panoptic_val/')
    miou = SemSegMetric(iou_metrics=['mIoU'])
    ap = CocoMetric(ann_file=shapes_root + 'annotations/instances_val.json', metric=['segm'])
    for metric in (pq, miou, ap):
        metric.dataset_meta = meta
    num_stuff_queries = num_stuff_segments = 0
    for i in range(len(dataset)):
        sample = dataset[i]['data_samples']
        sample.set_metainfo(dict(batch_input_shape=tuple(sample.metainfo['img_shape'][:2])))
        cls, masks, boxes = _outputs_from_gt(sample, num_things, num_classes, split_stuff=True)
        num_stuff_queries += int((cls.argmax(1) >= num_things).sum())
        num_stuff_segments += len(stuff_targets(sample.gt_sem_seg.sem_seg[0], num_things,
                                                num_classes)[0])
        (result, ) = head.predict(cls[None], masks[None], boxes[None], [sample])
        sample.pred_panoptic_seg = result['pan_results']
        sample.pred_sem_seg = result['sem_results']
        sample.pred_instances = result['ins_results']
        for metric in (pq, miou, ap):
            metric.process({}, [sample.to_dict()])
    assert num_stuff_queries > num_stuff_segments > 0  # stuff really was split over queries
    pq_result = pq.evaluate(len(dataset))
    assert pq_result['coco_panoptic/PQ'] == 100.0
    assert pq_result['coco_panoptic/PQ_th'] == 100.0 and pq_result['coco_panoptic/PQ_st'] == 100.0
    assert miou.evaluate(len(dataset))['mIoU'] == 100.0
    assert ap.evaluate(len(dataset))['coco/segm_mAP'] == 1.0
