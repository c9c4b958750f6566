"""Stop at the first non-finite input, prediction or loss, saying where and when.

Without these checks a diverged run fails inside scipy's Hungarian solver (``matrix contains invalid
numeric entries``), and NaN pixels at test time come out as NaN boxes and scores. Each check costs one
``isfinite`` reduction.
"""
from typing import Dict, Iterable, Optional

import torch
from torch import Tensor

from mmdet.structures import SampleList

__all__ = ['NonFiniteError', 'training_position', 'check_finite_inputs', 'check_finite_tensors',
           'check_finite_losses']


class NonFiniteError(FloatingPointError):
    """A NaN or inf where training or inference cannot go on."""


def training_position() -> str:
    """``'at iteration N (lr=...)'`` from MMEngine's message hub, or ``''`` outside a runner."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_current_instance()
    step = hub.get_info('iter')
    if step is None:
        return ''
    lrs = [f'{name[len("train/"):]}={buffer.current():.3g}'
           for name, buffer in hub.log_scalars.items()
           if name.startswith('train/') and name.endswith('lr')]
    return f' at iteration {step + 1}' + (f' ({", ".join(lrs)})' if lrs else '')


def _image_names(data_samples: Optional[SampleList], index: Iterable[int]) -> str:
    names = []
    for i in index:
        meta = data_samples[i].metainfo if data_samples is not None else {}
        names.append(str(meta.get('img_path', meta.get('img_id', f'batch index {i}'))))
    return ', '.join(names)


def check_finite_inputs(batch_inputs: Tensor, data_samples: Optional[SampleList],
                        stage: str) -> None:
    """Raise :class:`NonFiniteError` naming the images whose normalised pixels are NaN / inf.

    Args:
        batch_inputs (Tensor): (bs, 3, H, W) after the data preprocessor.
        data_samples (list[DetDataSample], optional): Their ``img_path`` names the images.
        stage (str): ``'training'`` or ``'prediction'``, for the message.
    """
    finite = torch.isfinite(batch_inputs).flatten(1).all(1)
    if bool(finite.all()):
        return
    bad = torch.nonzero(~finite).flatten().tolist()
    raise NonFiniteError(
        f'non-finite (NaN/inf) input pixels in {stage}{training_position()}: '
        f'{_image_names(data_samples, bad)} (a corrupt image, or data_preprocessor std = 0?)')


def check_finite_tensors(tensors: Dict[str, Optional[Tensor]], what: str) -> None:
    """Raise :class:`NonFiniteError` naming the entries of ``tensors`` that hold NaN / inf."""
    bad = [name for name, t in tensors.items() if t is not None and not bool(torch.isfinite(t).all())]
    if bad:
        raise NonFiniteError(
            f'{what} became NaN/inf{training_position()}: {", ".join(bad)}. The model diverged: '
            'lower the learning rate, keep gradient clipping on, or check the inputs')


def check_finite_losses(losses: Dict[str, Tensor]) -> None:
    """Raise :class:`NonFiniteError` if a loss term is NaN / inf (before the optimizer sees it)."""
    terms = {k: v for k, v in losses.items() if isinstance(v, Tensor)}
    if terms and bool(torch.isfinite(torch.stack([v.detach().float().sum()
                                                  for v in terms.values()])).all()):
        return
    bad = [k for k, v in terms.items() if not bool(torch.isfinite(v.detach()).all())]
    raise NonFiniteError(f'loss became NaN/inf{training_position()}: {", ".join(bad)}. The '
                         'model diverged: lower the learning rate, keep gradient clipping on, or '
                         'check the inputs')
