"""Training parity with the authors' code on ``../shared/fixtures/fixture_C.pt`` (FIXTURES-C.md).

:func:`run_case` converts the recorded upstream weights into the plugin's head, runs ``head.loss``
on the recorded features and targets inside the fixture's ``shape_keyed_rng`` (so the plugin's own
DN generator, matcher and point sampler draw the recorded numbers) and backwards the total;
:func:`compare` lists every recorded item next to the plugin's value: the difference and the
tolerance of FIXTURES-C.md section 13. The parity test asserts every row; the report tool
(``tools/analysis_tools/fixture_c_parity.py``) prints them.
"""
import importlib.util
import os.path as osp
from dataclasses import dataclass
from typing import Callable, Dict, List

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.mask import BitmapMasks
from ..converters import convert_upstream_state_dict, load_converted
from ..models.utils import mask_logits
from .helpers import REPO_ROOT

FIXTURES = osp.join(REPO_ROOT, '..', 'shared', 'fixtures')
HEAD_CONFIG = osp.join(REPO_ROOT, 'tests', 'data', 'fixture_c_head.py')
PR = 'sem_seg_head.predictor.'
MSDA = ('sampling_offsets', 'attention_weights')
#: upstream set suffix -> plugin key prefix
SET_PREFIX = {'': '', '_0': 'd0.', '_1': 'd1.', '_2': 'd2.', '_interm': 'interm.', '_dn': 'dn.',
              '_dn_0': 'dn.d0.', '_dn_1': 'dn.d1.', '_dn_2': 'dn.d2.'}
LOSS_NAME = {'loss_ce': 'loss_cls', 'loss_bbox': 'loss_bbox', 'loss_giou': 'loss_iou',
             'loss_mask': 'loss_mask', 'loss_dice': 'loss_dice'}
COST_PARTS = ('cost_class', 'cost_bbox', 'cost_giou', 'cost_mask', 'cost_dice')
COST_WEIGHTS = (4.0, 5.0, 2.0, 5.0, 5.0)


def plugin_loss_key(upstream: str) -> str:
    """``loss_giou_dn_1`` -> ``dn.d1.loss_iou`` (upstream's criterion names -> the plugin's)."""
    for base, name in LOSS_NAME.items():
        if upstream.startswith(base) and upstream[len(base):] in SET_PREFIX:
            return SET_PREFIX[upstream[len(base):]] + name
    raise KeyError(upstream)


def shape_keyed_rng() -> Callable:
    """The fixture's ``shape_keyed_rng`` context manager (loaded from the fixtures folder)."""
    spec = importlib.util.spec_from_file_location('shape_keyed_rng',
                                                  osp.join(FIXTURES, 'shape_keyed_rng.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.shape_keyed_rng


def recorded_samples(fx: dict) -> List[DetDataSample]:
    """The recorded targets as mmdet data samples (boxes = upstream's polygon boxes)."""
    samples = []
    for target, inst in zip(fx['targets'], fx['inputs']['instances']):
        h, w = target['masks'].shape[-2:]
        sample = DetDataSample(metainfo=dict(img_shape=(h, w), batch_input_shape=(h, w)))
        sample.gt_instances = InstanceData(labels=target['labels'],
                                           bboxes=inst['gt_boxes_xyxy_abs'],
                                           masks=BitmapMasks(target['masks'].numpy(), h, w))
        samples.append(sample)
    return samples


def build_head(fx: dict, case: str):
    """The plugin's head with the recorded weights; and upstream key -> plugin parameter name.

    Without DN (case ``nodn``) the plugin has no label embedding, so upstream's (which gets an
    all-zero gradient there) is left out of the conversion.
    """
    init_default_scope('mmdet')
    cfg = Config.fromfile(HEAD_CONFIG)
    upstream = {k: v.float() for k, v in fx['state_dict'].items()}
    for alias, canonical in fx['state_dict_aliases'].items():
        upstream[alias] = upstream[canonical]
    if case == 'nodn':
        cfg.head.dn_cfg = None
        del upstream[PR + 'label_enc.weight']
    head = MODELS.build(cfg.head).train()
    converted = convert_upstream_state_dict(upstream, head_prefix='')
    load_converted(head, converted)
    params = dict(head.named_parameters())
    # the converter passes tensors through: upstream key -> plugin key by tensor identity
    by_ptr = {v.data_ptr(): k for k, v in converted.items() if k in params}
    plugin_param = {k: by_ptr[v.data_ptr()] for k, v in upstream.items()
                    if v.data_ptr() in by_ptr}
    return head, plugin_param


def run_case(fx: dict, case: str) -> Dict[str, object]:
    """One training step of the plugin's head on the fixture (see the module docstring).

    Returns:
        dict: ``head``, ``losses``, ``total``, ``outputs`` (:class:`HeadOutputs`), ``dn``,
        ``targets``, ``matched`` (the criterion's indices per matching set, in its order),
        ``costs`` (per set and image, the matcher's weighted cost matrices), ``feats`` (with
        their gradients), ``plugin_param``, ``decoder_ref`` (the decoder's input anchors) and
        ``zero_grad`` (largest |gradient| of each section-12 fact).
    """
    head, plugin_param = build_head(fx, case)
    seen, matched, decoder_ref = {}, [], {}
    criterion_forward, match = head.criterion.forward, head.criterion.match
    decoder_forward = head.decoder.forward

    def record_forward(outputs, targets, dn=None):
        seen.update(outputs=outputs, targets=targets, dn=dn)
        return criterion_forward(outputs, targets, dn)

    def record_match(preds, features, targets, points=None):
        matched.append(match(preds, features, targets, points))
        return matched[-1]

    def record_decoder(**kwargs):
        decoder_ref['ref'] = kwargs['reference_points'].detach().clone()
        return decoder_forward(**kwargs)

    head.criterion.forward, head.criterion.match = record_forward, record_match
    head.decoder.forward = record_decoder
    feats = [fx['inputs']['features'][k].float().requires_grad_()
             for k in ('res2', 'res3', 'res4', 'res5')]
    rng = shape_keyed_rng()
    with rng():
        losses = head.loss(feats, recorded_samples(fx))
    outputs = seen['outputs']
    features_hwc = outputs.mask_features.detach().permute(0, 2, 3, 1).contiguous()
    with rng():  # the matcher's points are keyed by shape: the same ones as in the loss
        costs = [[head.criterion.matcher.costs(
            preds.cls_logits[0, b], preds.boxes[0, b], preds.mask_embeds[0, b],
            features_hwc[b], t, head.criterion.box_supervised(t.labels))
            for b, t in enumerate(seen['targets'])]
            for preds in list(outputs.layers) + [outputs.interm]]
    zero_grad = zero_gradient_facts(head, losses)
    total = sum(losses.values())
    total.backward()
    return dict(head=head, losses=losses, total=total, outputs=outputs, dn=seen['dn'],
                targets=seen['targets'], matched=matched, costs=costs, feats=feats,
                plugin_param=plugin_param, decoder_ref=decoder_ref['ref'], zero_grad=zero_grad)


def _grads(loss: torch.Tensor, tensors: List[torch.Tensor]) -> List[torch.Tensor]:
    """d loss / d tensors (zeros where the loss does not depend on a tensor)."""
    if not loss.requires_grad:
        return [torch.zeros_like(t) for t in tensors]
    grads = torch.autograd.grad(loss, tensors, retain_graph=True, allow_unused=True)
    return [torch.zeros_like(t) if g is None else g for g, t in zip(grads, tensors)]


def zero_gradient_facts(head, losses: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """Largest |gradient| of each section-12 fact that must be exactly zero: query selection is
    detached (only the interm losses reach ``enc_output``), the initial prediction's box losses
    have no gradient, matching queries never see DN queries (``label_enc``)."""
    enc = list(head.memory_trans_fc.parameters()) + list(head.memory_trans_norm.parameters())
    params = [p for p in head.parameters() if p.requires_grad]
    out = {'non-interm losses -> enc_output, enc_output_norm': max(
        g.abs().max().item() for g in _grads(
            sum(v for k, v in losses.items() if not k.startswith('interm.')), enc))}
    for key in ('d0.loss_bbox', 'd0.loss_iou', 'dn.d0.loss_bbox', 'dn.d0.loss_iou'):
        if key in losses:
            out[f'{key} -> every parameter'] = max(g.abs().max().item()
                                                   for g in _grads(losses[key], params))
    if head.dn_generator is not None:
        matching = sum(v for k, v in losses.items() if not k.startswith('dn.'))
        (g, ) = _grads(matching, [head.dn_generator.label_embedding.weight])
        out['matching-set losses -> label_enc'] = g.abs().max().item()
    return out


@dataclass
class ParityRow:
    """One compared item: ``diff`` must be <= ``tol`` (or >= for ``kind == 'min'``).

    ``kind``: ``'abs'`` max absolute difference, ``'rel'`` relative difference, ``'exact'``
    number of differing elements (tolerance 0), ``'min'`` a similarity that must reach ``tol``.
    """
    group: str
    item: str
    diff: float
    tol: float
    kind: str = 'abs'

    @property
    def ok(self) -> bool:
        return self.diff >= self.tol if self.kind == 'min' else self.diff <= self.tol


def _abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.detach().double() - b.double()).abs().max().item() if a.numel() else 0.0


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


def _exact(a: torch.Tensor, b: torch.Tensor) -> float:
    return float('inf') if a.shape != b.shape else float((a != b).sum())


def compare(fx: dict, case: str, run: Dict[str, object]) -> List[ParityRow]:
    """Every recorded item of case ``case`` against the plugin's run (section 13 tolerances)."""
    rows = _dn_rows(fx, run) if case == 'dn' else []
    rows += _prediction_rows(fx['cases'][case], run)
    rows += _matching_rows(fx['cases'][case], run)
    rows += _loss_rows(fx['cases'][case]['losses'], run)
    rows += _gradient_rows(fx['cases'][case]['grads'], run)
    rows += [ParityRow('zero gradients', k, v, 0.0) for k, v in run['zero_grad'].items()]
    return rows


def _dn_rows(fx: dict, run: dict) -> List[ParityRow]:
    rec, dn = fx['cases']['dn']['dn_inputs'], run['dn']
    slot = rec['slot_label']
    contents = run['head'].dn_generator.label_embedding.weight[slot.clamp(min=0)] * \
        (slot >= 0)[..., None]
    b, index = rec['known_bid'], rec['map_known_indice']
    g = 'DN inputs'
    return [
        ParityRow(g, 'groups, group size, queries', _exact(
            torch.tensor([dn.num_groups, dn.group_size, dn.num_queries]),
            torch.tensor([rec['scalar'], rec['single_pad'], rec['pad_size']])), 0, 'exact'),
        ParityRow(g, 'attention mask', _exact(dn.attn_mask, rec['attn_mask']), 0, 'exact'),
        ParityRow(g, 'contents = label_enc[noised labels], padding 0',
                  _exact(dn.query.detach(), contents.detach()), 0, 'exact'),
        ParityRow(g, 'noised boxes', _abs(dn.ref_unsig[b, index].sigmoid(),
                                          rec['noised_boxes']), 1e-6),
        ParityRow(g, 'input_query_bbox (unsigmoided)', _abs(dn.ref_unsig,
                                                            rec['input_query_bbox']), 1e-5),
    ]


def _plugin_sets(outputs) -> dict:
    sets = {f'aux{i}': s for i, s in enumerate(list(outputs.layers)[:-1])}
    sets.update(final=outputs.layers[-1], interm=outputs.interm)
    if outputs.dn is not None:
        sets.update({f'dn_aux{i}': s for i, s in enumerate(list(outputs.dn)[:-1])})
        sets['dn_final'] = outputs.dn[-1]
    return sets


def _prediction_rows(rec_case: dict, run: dict) -> List[ParityRow]:
    recorded, outputs = rec_case['predictions'], run['outputs']
    sets = _plugin_sets(outputs)
    rows = [ParityRow('predictions', 'set names', float(sorted(sets) != sorted(recorded)), 0,
                      'exact')]
    for name, preds in sets.items():
        ref = recorded[name]
        masks = mask_logits(preds.mask_embeds[0], outputs.mask_features).detach().double()
        fp = ref['pred_masks']
        rows += [
            ParityRow('predictions', f'{name} logits', _abs(preds.cls_logits[0],
                                                            ref['pred_logits']), 1e-4),
            ParityRow('predictions', f'{name} boxes', _abs(preds.boxes[0], ref['pred_boxes']),
                      1e-5),
            ParityRow('predictions', f'{name} masks abs_sum', _rel(masks.abs().sum().item(),
                                                                   fp['abs_sum']), 1e-5, 'rel'),
            ParityRow('predictions', f'{name} masks l2', _rel(masks.norm().item(), fp['l2']),
                      1e-5, 'rel'),
            ParityRow('predictions', f'{name} mask samples', _abs(
                masks.reshape(-1)[fp['sample_index']], fp['sample_values']), 1e-3),
        ]
        if 'pred_masks_full' in ref:
            rows.append(ParityRow('predictions', f'{name} masks (full)',
                                  _abs(masks, ref['pred_masks_full']), 1e-3))
    layers = outputs.layers
    rows += [
        ParityRow('predictions', 'aux0 logits == interm logits (bitwise)',
                  _exact(layers.cls_logits[:1], outputs.interm.cls_logits), 0, 'exact'),
        ParityRow('predictions', 'aux0 masks == interm masks (bitwise)',
                  _exact(layers.mask_embeds[:1], outputs.interm.mask_embeds), 0, 'exact'),
        ParityRow('predictions', 'decoder input anchors (DN refs, mask2box refs)', _exact(
            run['decoder_ref'], rec_case['debug']['decoder_in']['refpoints_unsigmoid'].sigmoid()),
            0, 'exact'),
    ]
    return rows


def _matching_rows(rec_case: dict, run: dict) -> List[ParityRow]:
    recorded = rec_case['matching']
    names = [f'aux{i}' for i in range(len(run['outputs'].layers) - 1)] + ['final', 'interm']
    rows = [ParityRow('matching', 'sets matched', _exact(torch.tensor(len(run['matched'])),
                                                         torch.tensor(len(names))), 0, 'exact')]
    for name, indices, costs in zip(names, run['matched'], run['costs']):
        for b, (ours, (query, gt)) in enumerate(zip(indices, recorded[name]['indices'])):
            rows.append(ParityRow('matching', f'{name} image {b} indices',
                                  _exact(ours, torch.stack([query, gt])), 0, 'exact'))
            ref = recorded[name]['costs'][b]
            rows.append(ParityRow('costs', f'{name} image {b} C', _abs(sum(costs[b]), ref['C']),
                                  1e-3))
            for part, weight, cost in zip(COST_PARTS, COST_WEIGHTS, costs[b]):
                rows.append(ParityRow('costs', f'{name} image {b} {part} (x weight)',
                                      _abs(cost, ref[part] * weight), 1e-3))
    if run['dn'] is not None:
        dn_indices = run['dn'].positive_indices([len(t) for t in run['targets']])
        for name, ref in rec_case['dn_indices'].items():
            for b, (ours, (query, gt)) in enumerate(zip(dn_indices, ref)):
                rows.append(ParityRow('matching', f'{name} image {b} DN pairs',
                                      _exact(ours, torch.stack([query, gt])), 0, 'exact'))
    return rows


def _loss_rows(rec: dict, run: dict) -> List[ParityRow]:
    losses = run['losses']
    mapped = {plugin_loss_key(k): k for k in rec['weighted']}
    rows = [ParityRow('losses', 'loss keys (upstream <-> plugin)',
                      float(sorted(mapped) != sorted(losses)), 0, 'exact')]
    for ours, theirs in mapped.items():
        tol = 5e-4 if ours.endswith(('loss_mask', 'loss_dice')) else 1e-4
        rows.append(ParityRow('losses', f'{ours} = {theirs}',
                              _rel(losses[ours].item(), rec['weighted'][theirs].item()), tol,
                              'rel'))
    rows.append(ParityRow('losses', 'weighted total', _rel(run['total'].item(),
                                                           rec['total'].item()), 1e-4, 'rel'))
    return rows


def _gradient_rows(grads: dict, run: dict) -> List[ParityRow]:
    params, plugin_param = dict(run['head'].named_parameters()), run['plugin_param']
    rows = [ParityRow('gradients', 'parameters without gradient',
                      float(sum(p.grad is None for p in params.values())), 0, 'exact')]
    global_sq = 0.0
    for key, fp in grads['fingerprints'].items():
        if key not in plugin_param:  # nodn: upstream's label_enc, absent from the plugin
            rows.append(ParityRow('gradients', f'{key} (no plugin parameter): upstream l2',
                                  fp['l2'], 0))
            continue
        g = params[plugin_param[key]].grad.double()
        global_sq += g.norm().item()**2
        rows.append(ParityRow('gradients', f'{key} l2', _rel(g.norm().item(), fp['l2']),
                              2e-2 if any(m in key for m in MSDA) else 1e-3, 'rel'))
    rows.append(ParityRow('gradients', 'global l2 norm',
                          _rel(global_sq**0.5, grads['global_l2_norm']), 1e-4, 'rel'))
    for key, ref in grads['full'].items():
        if key not in plugin_param:
            rows.append(ParityRow('gradients', f'{key} (no plugin parameter): upstream max',
                                  ref.abs().max().item(), 0))
            continue
        g = params[plugin_param[key]].grad
        tol = 5e-2 if any(m in key for m in MSDA) else 2e-3
        rows.append(ParityRow('gradients', f'{key} full, max|diff| / max|g|',
                              _abs(g, ref) / ref.abs().max().item(), tol))
        rows.append(ParityRow('gradients', f'{key} full, cosine', torch.nn.functional.
                              cosine_similarity(g.flatten().double(), ref.flatten().double(),
                                                0).item(), 0.9999, 'min'))
    for feat, (name, fp) in zip(run['feats'], grads['features'].items()):
        rows.append(ParityRow('gradients', f'd total / d {name} l2',
                              _rel(feat.grad.double().norm().item(), fp['l2']), 1e-3, 'rel'))
    return rows
