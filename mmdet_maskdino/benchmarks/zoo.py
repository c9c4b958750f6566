"""Model-zoo comparison: several detectors trained and measured under one protocol.

Every config is rewritten by :func:`prepare_config` to the same dataset, image size, batch size,
schedule (iterations, warm-up, step) and seed; each model keeps its own architecture and optimiser.
For each model: training (``tools/train.py``, resumable) or a given checkpoint, the AP curve from
MMEngine's scalars, and :func:`measure` in a fresh process (inference latency, training step time,
peak memory, parameters, FLOPs). :class:`ZooState` records finished stages in ``state.json`` so an
interrupted comparison picks up where it stopped.
"""
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional

from mmengine.config import Config

#: metrics of :class:`mmdet.evaluation.CocoMetric` / ``CocoPanopticMetric`` shown in the table.
AP_KEYS = {'box AP': 'coco/bbox_mAP', 'mask AP': 'coco/segm_mAP', 'PQ': 'coco_panoptic/PQ'}
COLUMNS = ['model', 'config', 'backbone', 'params (M)', 'GFLOPs', 'box AP', 'mask AP', 'PQ',
           'latency (ms)', 'train step (s)', 'peak mem (MiB)']


@dataclass
class ZooSpec:
    """The protocol shared by every compared model.

    Attributes:
        data_root (str): A COCO-style dataset with ``annotations/instances_{train,val}.json``
            and ``train/`` / ``val/`` images (the generated shapes dataset's layout).
        classes (tuple): Thing class names of the dataset.
        stuff_classes (tuple): Stuff class names, used by panoptic models (the dataset's
            ``annotations/panoptic_{train,val}.json`` + PNGs).
        image_size (int): Images resized to fit ``image_size x image_size`` (and padded to it where
            a model pads to a fixed size).
        iters (int): Training iterations.
        val_interval (int): Evaluate (and checkpoint) every so many iterations: the AP curve.
        batch_size (int): Training batch size.
        seed (int): MMEngine's ``randomness.seed``.
        warmup (int): Linear warm-up iterations; the lr then drops x0.1 at 5/6 of ``iters``.
    """
    data_root: str
    classes: tuple = ('circle', 'square', 'triangle', 'cross')
    stuff_classes: tuple = ('sky', 'ground')
    image_size: int = 128
    iters: int = 300
    val_interval: int = 100
    batch_size: int = 4
    seed: int = 0
    warmup: int = 20


@dataclass
class ZooEntry:
    """One compared model: a display name, a config, and optionally a trained checkpoint."""
    name: str
    config: str
    checkpoint: Optional[str] = None


def resolve_config(config: str) -> str:
    """Path of ``config``; ``mmdet::x.py`` names a config shipped inside the mmdet package."""
    if config.startswith('mmdet::'):
        import mmdet
        return osp.join(osp.dirname(mmdet.__file__), '.mim', 'configs', config[len('mmdet::'):])
    return config


def _has_masks(cfg: Config) -> bool:
    model = cfg.model
    return 'panoptic_head' in model or 'mask_head' in (model.get('roi_head') or {})


def _is_panoptic(cfg: Config) -> bool:
    """A model trained for panoptic segmentation (stuff classes in its fusion head)."""
    return (cfg.model.get('panoptic_fusion_head') or {}).get('num_stuff_classes', 0) > 0


def prepare_config(config: str, spec: ZooSpec) -> Config:
    """``config`` rewritten to the comparison protocol (see :class:`ZooSpec`).

    Replaced: the three dataloaders (the same images and pipelines for every model: load, flip,
    resize to ``image_size``, pack; ``CocoDataset``, or ``CocoPanopticDataset`` on the panoptic
    annotations of the same images for panoptic models), the evaluators (``CocoMetric`` bbox and,
    for mask models, segm; plus ``CocoPanopticMetric`` for panoptic models), fixed-size pads, the
    loop, the lr schedule, checkpointing and the seed. Kept: the model and its optimiser.
    """
    cfg = Config.fromfile(resolve_config(config))
    size = (spec.image_size, spec.image_size)
    root = osp.abspath(spec.data_root) + '/'
    with_mask = _has_masks(cfg)
    panoptic = _is_panoptic(cfg)
    for aug in cfg.model.get('data_preprocessor', {}).get('batch_augments') or []:
        if 'size' in aug:
            aug['size'] = size
    if panoptic:
        load = dict(type='LoadPanopticAnnotations', with_bbox=True, with_mask=True, with_seg=True)
        dataset = dict(type='CocoPanopticDataset', data_root=root, metainfo=dict(
            classes=spec.classes + spec.stuff_classes, thing_classes=spec.classes,
            stuff_classes=spec.stuff_classes))
        files = {split: dict(ann_file=f'annotations/panoptic_{split}.json',
                             data_prefix=dict(img=f'{split}/',
                                              seg=f'annotations/panoptic_{split}/'))
                 for split in ('train', 'val')}
    else:
        load = dict(type='LoadAnnotations', with_bbox=True, with_mask=with_mask)
        dataset = dict(type='CocoDataset', data_root=root, metainfo=dict(classes=spec.classes))
        files = {split: dict(ann_file=f'annotations/instances_{split}.json',
                             data_prefix=dict(img=f'{split}/')) for split in ('train', 'val')}
    train_pipeline = [
        dict(type='LoadImageFromFile', to_float32=True), load,
        dict(type='RandomFlip', prob=0.5),
        dict(type='Resize', scale=size, keep_ratio=True),
        dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=with_mask,
             keep_empty=not panoptic),
        dict(type='PackDetInputs')
    ]
    test_pipeline = [
        dict(type='LoadImageFromFile', to_float32=True),
        dict(type='Resize', scale=size, keep_ratio=True), load,
        dict(type='PackDetInputs',
             meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor'))
    ]
    cfg.train_dataloader = dict(
        batch_size=spec.batch_size, num_workers=0, persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=True),
        dataset=dict(dataset, **files['train'], filter_cfg=dict(filter_empty_gt=False),
                     pipeline=train_pipeline))
    cfg.val_dataloader = dict(
        batch_size=1, num_workers=0, persistent_workers=False, drop_last=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(dataset, **files['val'], test_mode=True, pipeline=test_pipeline))
    cfg.test_dataloader = cfg.val_dataloader
    evaluators = [dict(type='CocoMetric', ann_file=root + 'annotations/instances_val.json',
                       metric=['bbox', 'segm'] if with_mask else ['bbox'])]
    if panoptic:
        evaluators.insert(0, dict(type='CocoPanopticMetric',
                                  ann_file=root + 'annotations/panoptic_val.json',
                                  seg_prefix=root + 'annotations/panoptic_val/'))
        cfg.model.test_cfg.update(panoptic_on=True, instance_on=True, semantic_on=False)
    cfg.val_evaluator = evaluators if panoptic else evaluators[0]
    cfg.test_evaluator = cfg.val_evaluator
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=spec.iters,
                         val_interval=spec.val_interval)
    cfg.val_cfg, cfg.test_cfg = dict(type='ValLoop'), dict(type='TestLoop')
    cfg.param_scheduler = [
        dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=spec.warmup),
        dict(type='MultiStepLR', by_epoch=False, begin=0, end=spec.iters,
             milestones=[spec.iters * 5 // 6], gamma=0.1)
    ]
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', by_epoch=False,
                                        interval=spec.val_interval, max_keep_ckpts=1,
                                        save_last=True)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=max(1, spec.val_interval // 5))
    cfg.default_hooks.visualization = dict(type='DetVisualizationHook', draw=False)
    cfg.log_processor = dict(type='LogProcessor', window_size=10, by_epoch=False)
    cfg.randomness = dict(seed=spec.seed)
    cfg.auto_scale_lr = dict(enable=False, base_batch_size=16)
    cfg.pop('load_from', None)
    cfg.pop('resume', None)
    return cfg


def backbone_name(cfg: Config) -> str:
    """``'ResNet-18'`` style name of the model's backbone."""
    bb = cfg.model.get('backbone', {})
    depth = bb.get('depth')
    return f'{bb.get("type", "?")}-{depth}' if depth else str(bb.get('type', '?'))


def read_curve(work_dir: str, val_interval: int, iters: int,
               keys: Optional[Dict[str, str]] = None, last_run_only: bool = False) -> List[dict]:
    """``[{'iter': i, name: value, ...}]`` from the scalars.json files of a run in ``work_dir``.

    MMEngine writes validation records with step 0 in iteration loops; a record's iteration is the
    last logged training iteration before it rounded up to a multiple of ``val_interval``, and at
    least one ``val_interval`` after the previous record (training logged less often than it
    validates), capped at ``iters``. The files of every run in ``work_dir`` are read in order, so a
    resumed run continues one curve; ``last_run_only`` reads the newest run alone.

    Args:
        work_dir (str): The training work dir.
        val_interval (int): Validation interval of the run.
        iters (int): Its last iteration.
        keys (dict, optional): ``{name: scalar key}`` to read; default :data:`AP_KEYS`. A record
            holding any of them is a validation record; missing ones read as None.
        last_run_only (bool): Only the newest run (a rerun that is not a resume).
    """
    keys = keys or AP_KEYS
    files = _scalars_files(work_dir)
    curve: Dict[int, dict] = {}
    step = 0
    for path in files[-1:] if last_run_only else files:
        last_iter = 0
        with open(path) as f:
            for line in f:
                rec = json.loads(line)
                if 'iter' in rec and 'loss' in rec:
                    last_iter = rec['iter']
                elif any(k in rec for k in keys.values()):
                    logged = -(-last_iter // val_interval) * val_interval
                    step = min(max(logged, step + val_interval), iters)
                    curve[step] = dict(iter=step, **{n: rec.get(k) for n, k in keys.items()})
    return [curve[k] for k in sorted(curve)]


def _scalars_files(work_dir: str) -> List[str]:
    out = []
    for run in sorted(os.listdir(work_dir)) if osp.isdir(work_dir) else []:
        path = osp.join(work_dir, run, 'vis_data', 'scalars.json')
        if osp.isfile(path):
            out.append(path)
    return out


# ---------------------------------------------------------------------------- measurement
def _first_batch(cfg: Config, train: bool) -> dict:
    """The first batch of the config's training or validation dataloader."""
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(cfg.train_dataloader if train else cfg.val_dataloader,
                                     seed=cfg.randomness.seed)
    return next(iter(loader))


def _median_seconds(step: Callable[[], object], warmup: int, repeats: int,
                    device: str) -> float:
    """Median wall time of ``step()`` over ``repeats`` runs after ``warmup`` untimed ones (CUDA
    synchronised around each run)."""
    import torch
    times = []
    for i in range(warmup + repeats):
        if device == 'cuda':
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device == 'cuda':
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(config_path: str, checkpoint: Optional[str], device: str, warmup: int,
            repeats: int, train_steps: int) -> Dict[str, Optional[float]]:
    """Latency, training step, peak memory, parameters and FLOPs of one prepared config.

    Run it in a fresh process per model (:func:`measure_in_subprocess`): the peak memory is the
    process's peak RSS on CPU (``torch.cuda.max_memory_allocated`` on CUDA).

    * latency: ``model.test_step`` on one val image, median of ``repeats`` after ``warmup``.
    * train step: ``model.train_step`` (forward, backward, optimiser step with the config's
      optimiser wrapper) on a training batch, median of ``train_steps`` after one warm-up step.
    * FLOPs: mmengine's ``get_model_complexity_info`` of the tensor-mode forward on that val image;
      ops it cannot count (mmcv's deformable attention) are not included; None if it fails.
    """
    import resource

    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import mmdet_maskdino  # noqa: F401
    from mmdet.registry import MODELS
    cfg = Config.fromfile(config_path)
    init_default_scope('mmdet')
    torch.manual_seed(cfg.randomness.seed)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    if checkpoint:
        load_checkpoint(model, checkpoint, map_location=device)
    result: Dict[str, Optional[float]] = dict(
        params_m=sum(p.numel() for p in model.parameters()) / 1e6)

    val_batch = _first_batch(cfg, train=False)
    model.eval()
    with torch.no_grad():
        latency = _median_seconds(lambda: model.test_step(val_batch), warmup, repeats, device)
    result['latency_ms'] = latency * 1000
    result['gflops'] = _gflops(model, val_batch)

    model.train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    train_batch = _first_batch(cfg, train=True)
    result['train_step_s'] = _median_seconds(
        lambda: model.train_step(train_batch, optim_wrapper), 1, train_steps, device)
    result['peak_mib'] = (torch.cuda.max_memory_allocated() / 2**20 if device == 'cuda' else
                          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def _gflops(model, batch) -> Optional[float]:
    from functools import partial

    import torch
    from mmengine.analysis import FlopAnalyzer
    try:
        data = model.data_preprocessor(batch, False)
        forward = partial(model._forward, batch_data_samples=data['data_samples'])

        class _Tensor(torch.nn.Module):  # FlopAnalyzer traces module(inputs)
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, inputs):
                return forward(inputs)

        analyzer = FlopAnalyzer(_Tensor(), (data['inputs'], ))
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total() / 1e9
    except Exception:  # noqa: BLE001 -- reported as "n/a" in the table, never fatal
        return None


def measure_in_subprocess(config_path: str, checkpoint: Optional[str], device: str,
                          warmup: int, repeats: int, train_steps: int) -> dict:
    """:func:`measure` in a fresh Python process; returns its dict."""
    code = ('import json, sys; from mmdet_maskdino.benchmarks.zoo import measure; '
            'print("ZOO-RESULT " + json.dumps(measure(*json.loads(sys.argv[1]))))')
    args = json.dumps([config_path, checkpoint, device, warmup, repeats, train_steps])
    proc = subprocess.run([sys.executable, '-c', code, args], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONWARNINGS='ignore'))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('ZOO-RESULT ')]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f'measuring {config_path} failed (exit {proc.returncode}):\n'
                           f'{proc.stderr[-3000:]}')
    return json.loads(lines[-1][len('ZOO-RESULT '):])


# ---------------------------------------------------------------------------- state
@dataclass
class ZooState:
    """What a comparison has finished, persisted as ``state.json`` in its work dir.

    ``models[name]`` holds ``config``, ``backbone``, ``checkpoint``, ``curve``, ``measure`` and
    ``train_s`` as each stage completes; ``spec`` is the protocol, which a resumed run must share.
    """
    path: str
    spec: dict = field(default_factory=dict)
    models: Dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, work_dir: str, spec: ZooSpec) -> 'ZooState':
        path = osp.join(work_dir, 'state.json')
        state = cls(path=path, spec=asdict(spec))
        if osp.isfile(path):
            with open(path) as f:
                saved = json.load(f)
            if saved['spec'] != json.loads(json.dumps(state.spec)):
                raise ValueError(f'{path} was written for another protocol {saved["spec"]}; use '
                                 'another --work-dir or the same options')
            state.models = saved['models']
        return state

    def save(self) -> None:
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(dict(spec=self.spec, models=self.models), f, indent=1)
        os.replace(tmp, self.path)  # never a half-written state


# ---------------------------------------------------------------------------- reporting
def _fmt(value, digits: int = 3) -> str:
    return 'n/a' if value is None else f'{value:.{digits}f}'


def table_rows(state: ZooState) -> List[List[str]]:
    """One row per model, in :data:`COLUMNS` order (the last AP of each curve)."""
    rows = []
    for name, rec in state.models.items():
        last = (rec.get('curve') or [{}])[-1]
        m = rec.get('measure') or {}
        rows.append([name, rec['config'], rec.get('backbone', '?'), _fmt(m.get('params_m'), 1),
                     _fmt(m.get('gflops'), 2), _fmt(last.get('box AP')),
                     _fmt(last.get('mask AP')), _fmt(last.get('PQ'), 1),
                     _fmt(m.get('latency_ms'), 1), _fmt(m.get('train_step_s')),
                     _fmt(m.get('peak_mib'), 0)])
    return rows


def markdown_table(state: ZooState) -> str:
    lines = ['| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
    lines += ['| ' + ' | '.join(row) + ' |' for row in table_rows(state)]
    return '\n'.join(lines)


def plot(state: ZooState, out_dir: str) -> List[str]:
    """``ap_vs_iter.png`` (box and mask AP curves) and ``cost.png`` (latency, train step and
    peak memory bars). Returns the written paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(state.models)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, metric in zip(axes, ('box AP', 'mask AP')):
        for i, name in enumerate(names):  # one colour per model in every panel
            curve = [p for p in state.models[name].get('curve') or [] if p.get(metric) is not None]
            if curve:
                ax.plot([p['iter'] for p in curve], [p[metric] for p in curve], marker='o',
                        color=f'C{i}', label=name)
        ax.set(title=metric, xlabel='iteration', ylabel=metric)
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc='lower center', ncol=min(len(names), 4),
               fontsize='small')
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    ap_path = osp.join(out_dir, 'ap_vs_iter.png')
    fig.savefig(ap_path, dpi=100)
    plt.close(fig)

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, (key, title) in zip(axes, (('latency_ms', 'inference latency (ms)'),
                                       ('train_step_s', 'train step (s)'),
                                       ('peak_mib', 'peak memory (MiB)'))):
        values = [(state.models[n].get('measure') or {}).get(key) or 0.0 for n in names]
        ax.bar(range(len(names)), values, color=[f'C{i}' for i in range(len(names))])
        ax.set_xticks(range(len(names)), names, rotation=20, ha='right')
        ax.set_title(title)
    fig.tight_layout()
    cost_path = osp.join(out_dir, 'cost.png')
    fig.savefig(cost_path, dpi=100)
    plt.close(fig)
    return [ap_path, cost_path]
