from .checked_coco import CheckedCocoDataset, CheckedCocoPanopticDataset
from .checked_semseg import CheckedADE20KSegDataset
from .checks import (DataError, DataProblem, DataReport, check_coco_instances,
                     check_coco_panoptic)
from .dropped import DROPPED_KEY, DropTrackingMixin, dropped_records
from .transforms import LoadPanopticSegments
from .synthetic_shapes import (STUFF_CLASSES, THING_CLASSES, ShapesSpec, dataset_is_current,
                               generate_shapes_dataset, metainfo)

__all__ = [
    'CheckedCocoDataset', 'CheckedCocoPanopticDataset', 'LoadPanopticSegments',
    'CheckedADE20KSegDataset', 'DataError', 'DropTrackingMixin', 'DROPPED_KEY', 'dropped_records',
    'DataProblem', 'DataReport', 'check_coco_instances', 'check_coco_panoptic', 'ShapesSpec',
    'generate_shapes_dataset', 'dataset_is_current', 'metainfo', 'THING_CLASSES', 'STUFF_CLASSES'
]
