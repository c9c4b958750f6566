"""Early, readable validation of a training/testing config.

MMEngine builds modules lazily, so a typo in a ``type`` or a wrong data path surfaces as a deep
``KeyError`` (sometimes after minutes of model building). :func:`check_config` finds those mistakes
up front and reports the config file and the dotted field.
"""
import difflib
import json
import os.path as osp
from typing import Any, Iterator, List, Optional, Tuple, Union

from mmengine.config import Config, ConfigDict
from mmengine.registry import Registry

from mmdet import registry as mmdet_registry

#: top-level config sections and the registries their ``type`` fields may come from.
_SECTIONS = {
    'model': ('MODELS', 'TASK_UTILS'),
    'train_dataloader.dataset': ('DATASETS', 'TRANSFORMS'),
    'val_dataloader.dataset': ('DATASETS', 'TRANSFORMS'),
    'test_dataloader.dataset': ('DATASETS', 'TRANSFORMS'),
    'val_evaluator': ('METRICS', 'EVALUATOR'),
    'test_evaluator': ('METRICS', 'EVALUATOR'),
    'custom_hooks': ('HOOKS', ),
    'default_hooks': ('HOOKS', ),
    'param_scheduler': ('PARAM_SCHEDULERS', ),
}
_SMALL_JSON_BYTES = 64 * 2**20  # fully parse annotation files up to this size


class ConfigError(ValueError):
    """A config that cannot work, found before anything was built."""


def _get(cfg: Any, dotted: str) -> Any:
    node = cfg._cfg_dict if isinstance(cfg, Config) else cfg
    for key in dotted.split('.'):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


#: keys whose ``type`` is not a registry name (mmcv op names: nms, RoIAlign) or lives in another
#: registry.
_UNCHECKED_KEYS = ('nms', 'roi_layer')
_KEY_REGISTRIES = {'init_cfg': ('WEIGHT_INITIALIZERS', )}


def _iter_types(node: Any, path: str,
                registries: Tuple[str, ...]) -> Iterator[Tuple[str, str, Tuple[str, ...]]]:
    """Yield ``(dotted_path, type_name, registry_names)`` for every string ``type`` under ``node``."""
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield path, node['type'], registries
        for key, value in node.items():
            if key != 'type' and key not in _UNCHECKED_KEYS:
                yield from _iter_types(value, f'{path}.{key}',
                                       _KEY_REGISTRIES.get(key, registries))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _iter_types(value, f'{path}[{i}]', registries)


def _lookup(registries: List[Registry], name: str) -> bool:
    return any(reg.get(name) is not None for reg in registries)


def _check_types(cfg: Config, where: str) -> List[str]:
    errors = []
    for section, section_names in _SECTIONS.items():
        for path, name, names in _iter_types(_get(cfg, section), section, section_names):
            registries = [getattr(mmdet_registry, n) for n in names]
            if _lookup(registries, name):
                continue
            known = sorted({k for reg in registries for k in reg.module_dict})
            hint = difflib.get_close_matches(name.split('.')[-1], known, n=3)
            errors.append(f'{where}: {path}.type={name!r} is not registered in mmdet\'s '
                          f'{"/".join(names)} registry' +
                          (f' (did you mean {", ".join(map(repr, hint))}?)' if hint else '') +
                          '; check the spelling and `custom_imports`.')
    return errors


def _check_coco_json(path: str, field: str, where: str) -> Optional[str]:
    if not osp.isfile(path):
        return f'{where}: {field}={path!r} does not exist.'
    if osp.getsize(path) > _SMALL_JSON_BYTES:  # too large to parse twice: check the first byte only
        with open(path, 'rb') as f:
            head = f.read(1)
        return None if head == b'{' else \
            f'{where}: {field}={path!r} is not a COCO annotation file (not a JSON object).'
    try:
        with open(path) as f:
            data = json.load(f)
    except (ValueError, UnicodeDecodeError) as exc:
        return f'{where}: {field}={path!r} is not valid JSON ({exc}).'
    if not isinstance(data, dict):
        return f'{where}: {field}={path!r} is not a COCO annotation file (top level is ' \
               f'{type(data).__name__}, expected an object).'
    missing = [k for k in ('images', 'annotations', 'categories')
               if not isinstance(data.get(k), list)]
    if missing:
        return f'{where}: {field}={path!r} is not a COCO annotation file: missing list ' \
               f'field(s) {missing}.'
    return None


def _dataset_cfgs(cfg: Config) -> Iterator[Tuple[str, dict]]:
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        dataset = _get(cfg, f'{loader}.dataset')
        # unwrap RepeatDataset / ClassBalancedDataset style wrappers
        while isinstance(dataset, dict) and isinstance(dataset.get('dataset'), dict):
            dataset = dataset['dataset']
        if isinstance(dataset, dict):
            yield f'{loader}.dataset', dataset


def _is_coco_type(name: Any) -> bool:
    if not isinstance(name, str):
        return False
    dataset_cls = mmdet_registry.DATASETS.get(name)
    return isinstance(dataset_cls, type) and issubclass(dataset_cls, _coco_cls())


def _check_data(cfg: Config, where: str) -> List[str]:
    errors = []
    for path, dataset in _dataset_cfgs(cfg):
        data_root = dataset.get('data_root') or ''
        if data_root and not osp.isdir(data_root):
            errors.append(f'{where}: {path}.data_root={data_root!r} does not exist (generate or '
                          f'download the dataset, or pass --cfg-options {path}.data_root=...).')
            continue
        ann_file = dataset.get('ann_file')
        if ann_file and _is_coco_type(dataset.get('type')):
            error = _check_coco_json(osp.join(data_root, ann_file), f'{path}.ann_file', where)
            if error:
                errors.append(error)
    for evaluator in ('val_evaluator', 'test_evaluator'):
        metrics = _get(cfg, evaluator)
        for i, metric in enumerate(metrics if isinstance(metrics, list) else [metrics]):
            if isinstance(metric, dict) and metric.get('type') == 'CocoMetric' \
                    and metric.get('ann_file') and not metric.get('format_only'):
                error = _check_coco_json(metric['ann_file'], f'{evaluator}[{i}].ann_file', where)
                if error:
                    errors.append(error)
    return errors


def _dataset_metainfo(dataset: dict) -> dict:
    """The dataset class's ``METAINFO`` updated with the config's ``metainfo`` (no file read)."""
    dataset_cls = mmdet_registry.DATASETS.get(dataset.get('type', ''))
    meta = dict(getattr(dataset_cls, 'METAINFO', {}) or {})
    meta.update(dataset.get('metainfo') or {})
    return meta


def _check_classes(cfg: Config, where: str) -> List[str]:
    """The head's things/stuff split must be the dataset's (classes are ordered things first)."""
    errors = []
    model = _get(cfg, 'model') or {}
    heads = [(f'model.{name}', model[name]) for name in ('panoptic_head', 'panoptic_fusion_head')
             if isinstance(model.get(name), dict) and 'num_things_classes' in model[name]]
    for path, dataset in _dataset_cfgs(cfg):
        if not isinstance(dataset.get('type'), str):
            continue
        meta = _dataset_metainfo(dataset)
        if 'classes' not in meta:
            continue
        if 'thing_classes' in meta or 'stuff_classes' in meta:  # panoptic datasets
            expected = (len(meta.get('thing_classes', ())), len(meta.get('stuff_classes', ())))
            told = 'thing_classes/stuff_classes'
        elif issubclass(mmdet_registry.DATASETS.get(dataset['type']), _coco_cls()):
            expected, told = (len(meta['classes']), 0), 'classes (all things)'
        else:  # semantic datasets: every class is stuff
            expected, told = (0, len(meta['classes'])), 'classes (all stuff)'
        for head_path, head in heads:
            got = (head.get('num_things_classes', 0), head.get('num_stuff_classes', 0))
            if got != expected:
                errors.append(f'{where}: {head_path}.num_things_classes/num_stuff_classes='
                              f'{got[0]}/{got[1]} but {path} ({dataset["type"]}) has '
                              f'{expected[0]}/{expected[1]} from its metainfo {told}.')
    return errors


def _coco_cls() -> type:
    from mmdet.datasets import CocoDataset
    return CocoDataset


def check_config(cfg: Union[Config, ConfigDict], filename: Optional[str] = None) -> None:
    """Raise :class:`ConfigError` listing every problem found in ``cfg``.

    Checks that every ``type`` in the model, datasets, pipelines, evaluators, hooks and schedulers is
    registered, that the head's ``num_things_classes`` / ``num_stuff_classes`` match the datasets'
    metainfo (panoptic: ``thing_classes`` / ``stuff_classes``; instance: all things; semantic: all
    stuff), that dataset ``data_root`` folders exist, and that the annotation files of COCO-style
    datasets and ``CocoMetric`` evaluators exist and are COCO json.

    Args:
        cfg (Config | ConfigDict): The full config (custom imports already processed).
        filename (str, optional): Config path for messages; defaults to ``cfg.filename``.
    """
    where = filename or getattr(cfg, 'filename', None) or '<config>'
    from mmengine.registry import DefaultScope, init_default_scope
    if DefaultScope.get_current_instance() is None:
        init_default_scope(cfg.get('default_scope', 'mmdet'))
    errors = _check_types(cfg, where)
    if not errors:  # the class check looks datasets up by type
        errors += _check_classes(cfg, where)
    errors += _check_data(cfg, where)
    if errors:
        raise ConfigError('invalid config:\n  ' + '\n  '.join(errors))
