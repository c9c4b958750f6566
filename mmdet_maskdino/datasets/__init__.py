from .checked_coco import CheckedCocoDataset
from .checked_semseg import CheckedADE20KSegDataset
from .checks import DataError, DataProblem, DataReport, check_coco_instances
from .synthetic_shapes import (STUFF_CLASSES, THING_CLASSES, ShapesSpec, dataset_is_current,
                               generate_shapes_dataset, metainfo)

__all__ = ['CheckedCocoDataset', 'CheckedADE20KSegDataset', 'DataError', 'DataProblem', 'DataReport', 'check_coco_instances',
           'ShapesSpec', 'generate_shapes_dataset', 'dataset_is_current', 'metainfo',
           'THING_CLASSES', 'STUFF_CLASSES']
