"""From a pretext checkpoint to the start of fine-tuning: which weights carry over, and a report."""
from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from torch import Tensor, nn

#: pretext-only modules: the patch projection (and the patch-to-token key of patch-conditioned
#: selection), the learnable patch queries / anchors, the reconstruction MLP (their absence in the
#: target model is expected)
PRETEXT_ONLY = ('panoptic_head.patch_proj.', 'panoptic_head.patch_key.', 'panoptic_head.query_feat.',
                'panoptic_head.query_embed.', 'panoptic_head.criterion.reconstruction.')
#: not transferred by design: the backbone (frozen in the pretext; the fine-tuning run brings its
#: own, e.g. ImageNet weights through ``init_cfg``)
NOT_TRANSFERRED = ('backbone.', )


@dataclass
class TransferReport:
    """What :func:`pretrained_transformer_state` did.

    Attributes:
        transferred (list[str]): Target keys filled from the pretext checkpoint.
        pretext_only (list[str]): Pretext keys with no use in the target (patch queries).
        skipped (list[str]): Pretext keys left out by design (the backbone).
        shape_mismatch (list[str]): Keys in both with different shapes (e.g. the class head:
            1 patch class vs the dataset's classes), kept at the target's initialisation.
        missing (list[str]): Target keys the pretext does not have (query selection's
            ``memory_trans_*``, denoising's label embedding, ...): kept at initialisation.
    """
    transferred: List[str] = field(default_factory=list)
    pretext_only: List[str] = field(default_factory=list)
    skipped: List[str] = field(default_factory=list)
    shape_mismatch: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)

    def summary(self) -> str:
        def block(name: str, keys: List[str]) -> str:
            prefixes = sorted({'.'.join(k.split('.')[:3]) for k in keys})
            return f'{name}: {len(keys)} tensors' + (f' ({", ".join(prefixes)})' if keys else '')
        return '\n'.join([block('transferred', self.transferred),
                          block('not in the target (pretext only)', self.pretext_only),
                          block('skipped by design', self.skipped),
                          block('shape differs, target init kept', self.shape_mismatch),
                          block('not in the pretext, target init kept', self.missing)])


def pretrained_transformer_state(pretext_state: Dict[str, Tensor], target: nn.Module
                                 ) -> Tuple[Dict[str, Tensor], TransferReport]:
    """The target model's state dict with the pretext's transformer weights in it.

    Args:
        pretext_state (dict): ``state_dict`` of an :class:`UPDETR` model.
        target (nn.Module): A :class:`MaskDINO` (e.g. built from ``configs/maskdino_r50.py``).

    Returns:
        tuple: The full target state dict (transferred tensors replaced, everything else as
        initialised) and a :class:`TransferReport` accounting for every key of both.
    """
    state = {k: v.clone() for k, v in target.state_dict().items()}
    report = TransferReport()
    for key, value in pretext_state.items():
        if key.startswith(NOT_TRANSFERRED):
            report.skipped.append(key)
        elif key not in state:
            if not key.startswith(PRETEXT_ONLY):
                raise KeyError(f'{key}: in the pretext checkpoint but neither in the target '
                               'model nor a known pretext-only module (wrong checkpoint?)')
            report.pretext_only.append(key)
        elif state[key].shape != value.shape:
            report.shape_mismatch.append(key)
        else:
            state[key] = value.detach().clone().to(state[key].dtype)
            report.transferred.append(key)
    seen = set(pretext_state)
    report.missing = [k for k in state if k not in seen and not k.startswith(NOT_TRANSFERRED)]
    return state, report
