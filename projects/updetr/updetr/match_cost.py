"""A match cost that keeps UP-DETR's query groups on their own patches."""
from typing import Optional

import torch
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class QueryGroupCost(BaseMatchCost):
    """``weight`` where query ``i``'s group (``i // group_size``) is not target ``j``'s patch.

    UP-DETR matches every query with every patch (its DETR matcher); group ``k``'s queries carry
    patch ``k``'s feature, so matching them to another patch asks a group to find a patch it was
    not given. With this cost (a weight far above the other costs' range) the Hungarian solution
    pairs patch ``k`` only with a query of group ``k``: the conditional task is supervised
    directly. Targets must be in patch order (they are: :class:`SampleQueryPatches`), queries in
    consecutive groups (both UP-DETR heads).

    Args:
        group_size (int): Queries per patch group.
        weight (float): Cost of an off-group pair.
    """

    def __init__(self, group_size: int, weight: float = 1000.0) -> None:
        super().__init__(weight=weight)
        self.group_size = group_size

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        """(num_queries, num_patches) cost matrix."""
        num_queries, num_gts = len(pred_instances.scores), len(gt_instances.labels)
        device = pred_instances.scores.device
        group = torch.arange(num_queries, device=device) // self.group_size
        off = group[:, None] != torch.arange(num_gts, device=device)[None]
        return off.float() * self.weight
