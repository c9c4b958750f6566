"""What :class:`MaskDINOHead` hands to its criterion and to inference (plain data structures).

Masks are not stored: a query's mask logits are the dot product of its mask embedding with the
pixel embedding (``mask_features``), so the criterion computes them only where it needs them (at
sampled points, or for matched queries), and inference only for the last layer.
"""
from dataclasses import dataclass
from typing import Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor


@dataclass
class PredictionSets:
    """Stacked predictions of several passes over the same queries.

    Attributes:
        cls_logits (Tensor): (num_sets, bs, nq, cls_out_channels) class logits (sigmoid/focal
            logits, or softmax logits with a last no-object column for a CE-trained model).
        boxes (Tensor): (num_sets, bs, nq, 4) sigmoided cxcywh, normalised w.r.t. the **padded**
            batch.
        mask_embeds (Tensor): (num_sets, bs, nq, mask_dims); mask logits =
            :func:`mask_logits` ``(mask_embeds, mask_features)``.
        query_states (Tensor, optional): (num_sets, bs, nq, embed_dims) the normed query states
            the heads read (for objectives with heads of their own, e.g. UP-DETR's feature
            reconstruction).
    """
    cls_logits: Tensor
    boxes: Tensor
    mask_embeds: Tensor
    query_states: Optional[Tensor] = None

    def __len__(self) -> int:
        return self.cls_logits.size(0)

    def __getitem__(self, index) -> 'PredictionSets':
        """Sets ``index`` (an int keeps a leading set dimension of 1)."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return PredictionSets(self.cls_logits[index], self.boxes[index], self.mask_embeds[index],
                              _index(self.query_states, index))

    def __iter__(self) -> Iterator['PredictionSets']:
        return (self[i] for i in range(len(self)))

    def queries(self, index: slice) -> 'PredictionSets':
        """The same sets restricted to the queries ``index`` (dimension 2)."""
        return PredictionSets(self.cls_logits[:, :, index], self.boxes[:, :, index],
                              self.mask_embeds[:, :, index],
                              _index(self.query_states, (slice(None), slice(None), index)))


def _index(tensor: Optional[Tensor], index) -> Optional[Tensor]:
    return None if tensor is None else tensor[index]


@dataclass
class HeadOutputs:
    """Everything the head predicts for one batch.

    Attributes:
        mask_features (Tensor): (bs, mask_dims, H/4, W/4) pixel embedding (1/4 of the padded
            batch).
        layers (PredictionSets): The matching queries: the initial prediction from the decoder's
            input queries (when the head has ``initial_pred``), then one set per decoder layer; the
            last set is the model's output.
        interm (PredictionSets, optional): One set: the selected encoder tokens (two-stage
            query selection); ``boxes`` are the regressed proposals before mask-enhanced init.
        dn (PredictionSets, optional): The denoising queries, one set per entry of ``layers``
            (training with denoising only).
        aux (dict, optional): What the head's query source hands to its criterion
            (:attr:`InitialQueries.aux`; None in Mask DINO).
    """
    mask_features: Tensor
    layers: PredictionSets
    interm: Optional[PredictionSets] = None
    dn: Optional[PredictionSets] = None
    aux: Optional[Dict[str, Tensor]] = None


def split_dn_queries(sets: PredictionSets,
                     num_dn: int) -> Tuple[Optional[PredictionSets], PredictionSets]:
    """Split the decoder's query sequence ``[DN queries, matching queries]`` (DN first).

    Args:
        sets (PredictionSets): Predictions of all ``num_dn + num_queries`` decoder queries.
        num_dn (int): Number of leading denoising queries (0: none).

    Returns:
        tuple: ``(dn, matching)``; ``dn`` is None when ``num_dn == 0``.
    """
    if num_dn == 0:
        return None, sets
    return sets.queries(slice(0, num_dn)), sets.queries(slice(num_dn, None))


def mask_logits(mask_embeds: Tensor, mask_features: Tensor) -> Tensor:
    """Full-resolution mask logits.

    Args:
        mask_embeds (Tensor): (..., bs, nq, mask_dims).
        mask_features (Tensor): (bs, mask_dims, h, w).

    Returns:
        Tensor: (..., bs, nq, h, w).
    """
    return torch.einsum('...bqc,bchw->...bqhw', mask_embeds, mask_features)
