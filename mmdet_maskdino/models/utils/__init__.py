from .box_init import BoxInitType, init_anchor_boxes, mask2box_bitmask, mask2box_tight
from .finite import (NonFiniteError, check_finite_inputs, check_finite_losses,
                     check_finite_tensors, training_position)
from .levels import flatten_levels, level_shapes
from .point_masks import (MatchPoints, TargetPoints, bilinear_corners, candidate_logits,
                          matched_mask_logits,
                          most_uncertain, point_mask_logits, sample_features, sample_masks,
                          shared_uncertain_points, uncertain_points)
from .predictions import HeadOutputs, PredictionSets, mask_logits, split_dn_queries
from .proposals import gen_encoder_output_proposals
from .targets import SegTargets, build_targets, stuff_targets, targets_as_samples

__all__ = ['BoxInitType', 'init_anchor_boxes', 'mask2box_bitmask', 'mask2box_tight',
           'gen_encoder_output_proposals', 'flatten_levels', 'level_shapes', 'HeadOutputs',
           'PredictionSets',
           'mask_logits', 'split_dn_queries', 'matched_mask_logits', 'point_mask_logits',
           'sample_masks', 'bilinear_corners', 'sample_features', 'uncertain_points',
           'most_uncertain', 'shared_uncertain_points', 'candidate_logits', 'MatchPoints', 'TargetPoints',
           'SegTargets', 'build_targets', 'stuff_targets', 'targets_as_samples', 'NonFiniteError',
           'check_finite_inputs', 'check_finite_losses', 'check_finite_tensors', 'training_position']
