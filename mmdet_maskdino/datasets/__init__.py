from .synthetic_shapes import (STUFF_CLASSES, THING_CLASSES, ShapesSpec, dataset_is_current,
                               generate_shapes_dataset, metainfo)

__all__ = ['ShapesSpec', 'generate_shapes_dataset', 'dataset_is_current', 'metainfo',
           'THING_CLASSES', 'STUFF_CLASSES']
