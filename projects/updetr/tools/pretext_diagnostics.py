"""Where the UP-DETR pretext stands on its validation images, beyond patch AP.

Prints, for a pretext checkpoint (or ``none``: the untrained model):

* own-group best IoU per prediction set: for every patch, the best IoU of *its own group's*
  boxes with it, averaged over patches, for the initial anchors (the initial prediction) and
  after every decoder layer (does the decoder refine the boxes?), and the fraction of patches
  found at IoU > 0.5 after the last layer;
* the same with the patches rolled among the groups (group ``k`` given patch ``k + 1``'s
  pixels): IoU with the *given* patch and with the *old* one (does a group follow its patch?);
* for :class:`UPDETRSelectionHead`, token retrieval: how often the top-scoring token's proposal
  centre lies inside the patch, against chance (the fraction of tokens inside, i.e. the patch's
  area share).

Example::

    python projects/updetr/tools/pretext_diagnostics.py \\
        projects/updetr/configs/updetr_selection_maskdino_r18_shapes.py \\
        work_dirs/updetr_selection/iter_1000.pth
"""
import argparse
import os.path as osp
import sys
from typing import Dict, List

import torch
from torch import Tensor

sys.path.insert(0, osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..')))

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

from mmdet.structures.bbox import bbox_cxcywh_to_xyxy, bbox_xyxy_to_cxcywh  # noqa: E402
from projects.updetr.updetr import own_group_ious  # noqa: E402
from projects.updetr.updetr.selection import centres_inside  # noqa: E402


def diagnose(model, dataloader) -> Dict[str, Tensor]:
    """Run the model's head on every validation batch (unrolled and rolled patches)."""
    head = model.panoptic_head
    captured = {}
    source = head.initial_queries

    def capture(*args, **kwargs):
        captured['initial'] = source(*args, **kwargs)
        return captured['initial']

    head.initial_queries = capture
    stats: Dict[str, List[Tensor]] = {k: [] for k in ('sets', 'given', 'old', 'top1', 'chance')}
    try:
        with torch.no_grad():
            for data in dataloader:
                data = model.data_preprocessor(data, False)
                samples = data['data_samples']
                feats = model.extract_feat(data['inputs'])
                patch_feats = model.patch_features(samples)
                for rolled in (False, True):
                    inputs = patch_feats.roll(-1, 1) if rolled else patch_feats
                    out = head(feats, patch_feats=inputs)
                    _accumulate(stats, out, captured['initial'], samples, head.group_size,
                                rolled)
    finally:
        head.initial_queries = source
    return {k: torch.cat(v, -1) for k, v in stats.items() if v}


def _accumulate(stats, out, initial, samples, group_size: int, rolled: bool) -> None:
    for b, sample in enumerate(samples):
        h, w = sample.metainfo['batch_input_shape']
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        gt = sample.gt_instances.bboxes
        gt = getattr(gt, 'tensor', gt).float()
        group = torch.arange(out.layers.boxes.size(2)) // group_size
        last = bbox_cxcywh_to_xyxy(out.layers.boxes[-1, b]) * scale
        if rolled:
            stats['given'].append(own_group_ious(last, group, gt, shift=1))
            stats['old'].append(own_group_ious(last, group, gt))
            continue
        stats['sets'].append(torch.stack([
            own_group_ious(bbox_cxcywh_to_xyxy(boxes[b]) * scale, group, gt)
            for boxes in out.layers.boxes]))
        if initial.aux is not None:
            aux = initial.aux
            centres, valid = aux['token_centres'][b], aux['token_valid'][b]
            exact = centres_inside(centres, valid, bbox_xyxy_to_cxcywh(gt / scale))
            top = aux['token_logits'][b].argmax(-1)
            stats['top1'].append(exact.gather(1, top[:, None])[:, 0].float())
            stats['chance'].append(exact.float().sum(1) / valid.float().sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint', help="pretext checkpoint, or 'none' (untrained)")
    parser.add_argument('--work-dir', default='work_dirs/pretext_diagnostics')
    args = parser.parse_args()
    cfg = Config.fromfile(args.config)
    cfg.work_dir = args.work_dir
    cfg.load_from = None if args.checkpoint == 'none' else args.checkpoint
    runner = Runner.from_cfg(cfg)
    if cfg.load_from:
        runner.load_or_resume()
    else:  # the untrained model: its initialisation, with the frozen backbone's checkpoint
        runner.model.init_weights()
    model = runner.model.eval()
    stats = diagnose(model, runner.val_dataloader)
    sets = stats['sets'].mean(-1)
    first = 1 if model.panoptic_head.initial_pred else 0  # set 0: the anchors themselves
    names = ['anchors' if i < first else f'layer {i + 1 - first}' for i in range(len(sets))]
    print(f'| checkpoint | {" | ".join(names)} | found (IoU > 0.5) | rolled: given patch | '
          'rolled: old patch | top-1 token inside | chance |')
    print('|---' * (len(names) + 6) + '|')
    retrieval = (f'{stats["top1"].mean():.3f} | {stats["chance"].mean():.3f}'
                 if 'top1' in stats else '- | -')
    print(f'| {args.checkpoint} | ' + ' | '.join(f'{v:.3f}' for v in sets) +
          f' | {(stats["sets"][-1] > 0.5).float().mean():.3f} | {stats["given"].mean():.3f} | '
          f'{stats["old"].mean():.3f} | {retrieval} |')


if __name__ == '__main__':
    main()
