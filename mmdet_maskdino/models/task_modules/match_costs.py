"""Match costs of Mask DINO's panoptic model."""
from typing import Optional, Union

from mmengine.config import ConfigDict
from mmengine.structures import InstanceData
from torch import Tensor

from mmdet.models.task_modules.assigners.match_cost import BaseMatchCost
from mmdet.registry import TASK_UTILS


@TASK_UTILS.register_module()
class ThingBoxCost(BaseMatchCost):
    """A box match cost that only thing targets steer (upstream's panoptic matching).

    Wraps a box cost (``BBoxL1Cost``, ``IoUCost``, ...). Columns of stuff targets -- those with
    ``gt_instances.is_thing`` False: a stuff region's box says little -- get the mean cost over the
    thing targets of the image (0 when it has none), so the box terms do not change which query
    a stuff segment is matched to. Without ``is_thing`` the wrapped cost is returned unchanged.

    Args:
        cost (dict): The wrapped box cost config (its own ``weight`` applies).
    """

    def __init__(self, cost: Union[dict, ConfigDict]) -> None:
        super().__init__(weight=1.0)
        self.cost = TASK_UTILS.build(cost)

    def __call__(self, pred_instances: InstanceData, gt_instances: InstanceData,
                 img_meta: Optional[dict] = None, **kwargs) -> Tensor:
        """Returns the (num_preds, num_gts) cost matrix."""
        cost = self.cost(pred_instances, gt_instances, img_meta, **kwargs)
        if 'is_thing' not in gt_instances:
            return cost
        is_thing = gt_instances.is_thing
        if is_thing.all():
            return cost
        cost = cost.clone()
        cost[:, ~is_thing] = cost[:, is_thing].mean() if is_thing.any() else 0.0
        return cost
