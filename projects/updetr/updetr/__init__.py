"""UP-DETR's random query patch detection as an unsupervised pretext for Mask DINO's transformer."""
from .checkpoint import TransferReport, pretrained_transformer_state
from .dataset import FolderImageDataset
from .head import UPDETRCriterion, UPDETRHead, group_attention_mask
from .metric import PatchLocalisationMetric
from .model import UPDETR
from .patches import PackPatchInputs, SampleQueryPatches, sample_patch_boxes
from .losses import feature_reconstruction_loss

__all__ = ['TransferReport', 'pretrained_transformer_state', 'FolderImageDataset',
           'UPDETRCriterion', 'UPDETRHead', 'group_attention_mask', 'PatchLocalisationMetric',
           'UPDETR', 'PackPatchInputs', 'SampleQueryPatches', 'sample_patch_boxes',
           'feature_reconstruction_loss']
