"""UP-DETR's feature reconstruction loss."""
import torch.nn.functional as F
from torch import Tensor


def feature_reconstruction_loss(pred: Tensor, target: Tensor, avg_factor: float) -> Tensor:
    """``sum_i || pred_i / |pred_i| - target_i / |target_i| ||^2 / avg_factor`` (UP-DETR eq. 2:
    L2 between the L2-normalised predicted and patch features).

    Args:
        pred (Tensor): (m, D) features predicted by the matched queries.
        target (Tensor): (m, D) the matched patches' features.
        avg_factor (float): Normaliser (the number of patches).

    Returns:
        Tensor: Scalar loss.
    """
    diff = F.normalize(pred, dim=-1) - F.normalize(target, dim=-1)
    return diff.pow(2).sum() / avg_factor
