"""Unified query selection: the top-K encoder tokens become content queries and anchor boxes."""
from typing import NamedTuple

import torch
from torch import Tensor, nn


class SelectedQueries(NamedTuple):
    """Output of :func:`select_queries` (nothing detached; callers detach what they feed on).

    Attributes:
        content (Tensor): (bs, K, embed_dims) selected ``output_memory`` tokens.
        ref_unsig (Tensor): (bs, K, 4) unsigmoided cxcywh boxes (proposal + box-head delta),
            normalised w.r.t. the padded batch.
        index (Tensor): (bs, K) indices of the selected tokens.
        enc_logits (Tensor): (bs, num_tokens, num_classes) class logits of every token.
    """
    content: Tensor
    ref_unsig: Tensor
    index: Tensor
    enc_logits: Tensor


def select_queries(output_memory: Tensor, proposals: Tensor, cls_branch: nn.Module,
                   reg_branch: nn.Module, num_queries: int) -> SelectedQueries:
    """Score every encoder token with the shared heads and keep the top ``num_queries``.

    The ranking uses the max class logit of ``cls_branch(output_memory)`` (no decoder norm, as
    upstream). Tokens whose proposal is invalid have zeroed memory and ``inf`` proposals.

    Args:
        output_memory (Tensor): (bs, num_tokens, embed_dims), ``LayerNorm(Linear(memory))``.
        proposals (Tensor): (bs, num_tokens, 4) unsigmoided cxcywh proposals.
        cls_branch (nn.Module): Shared class head.
        reg_branch (nn.Module): Shared box head (deltas in unsigmoided space).
        num_queries (int): K.
    """
    enc_logits = cls_branch(output_memory)
    k = min(num_queries, output_memory.size(1))
    index = torch.topk(enc_logits.max(-1)[0], k, dim=1)[1]
    enc_boxes = reg_branch(output_memory) + proposals
    return SelectedQueries(gather_tokens(output_memory, index), gather_tokens(enc_boxes, index),
                           index, enc_logits)


def gather_tokens(values: Tensor, index: Tensor) -> Tensor:
    """``values[b, index[b]]`` for every image: (bs, n, C) from (bs, num_tokens, C) and (bs, n)."""
    return torch.gather(values, 1, index.unsqueeze(-1).expand(-1, -1, values.size(-1)))
