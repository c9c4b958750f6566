"""UP-DETR's random query patch detection as an unsupervised pretext for Mask DINO's transformer."""
from .checkpoint import TransferReport, pretrained_transformer_state
from .dataset import FolderImageDataset
from .head import UPDETRCriterion, UPDETRHead, UPDETRSelectionHead, group_attention_mask
from .match_cost import QueryGroupCost
from .metric import PatchLocalisationMetric, own_group_ious
from .model import UPDETR
from .patches import PackPatchInputs, SampleQueryPatches, sample_patch_boxes
from .losses import feature_reconstruction_loss
from .selection import patch_token_logits, patch_token_positives, token_retrieval_loss

__all__ = ['TransferReport', 'pretrained_transformer_state', 'FolderImageDataset',
           'UPDETRCriterion', 'UPDETRHead', 'UPDETRSelectionHead', 'group_attention_mask',
           'QueryGroupCost', 'PatchLocalisationMetric', 'own_group_ious',
           'UPDETR', 'PackPatchInputs', 'SampleQueryPatches', 'sample_patch_boxes',
           'feature_reconstruction_loss', 'patch_token_logits', 'patch_token_positives',
           'token_retrieval_loss']
