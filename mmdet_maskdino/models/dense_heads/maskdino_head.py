"""Mask DINO's head: pixel decoder, unified query selection, denoising and the decoder."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmcv.cnn import Linear
from mmengine.model import BaseModule, bias_init_with_prob, constant_init
from torch import Tensor, nn

from mmdet.models.layers.transformer.utils import MLP, inverse_sigmoid
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import ConfigType, OptConfigType, OptMultiConfig
from ..layers import (DnQueries, MaskDINODnQueryGenerator, MaskDINOTransformerDecoder,
                      select_queries)
from ..utils import (BoxInitType, flatten_levels, gen_encoder_output_proposals,
                     init_anchor_boxes)
from .maskdino_loss import MaskDINOLossMixin

#: One prediction set: ``pred_logits`` (bs, nq, C), ``pred_boxes`` (bs, nq, 4) sigmoided cxcywh
#: normalised w.r.t. the padded batch, ``pred_masks`` (bs, nq, H/4, W/4) logits or None.
Prediction = Dict[str, Optional[Tensor]]


@MODELS.register_module()
class MaskDINOHead(MaskDINOLossMixin, BaseModule):
    """Mask DINO head (upstream ``sem_seg_head``: ``MaskDINOEncoder`` + ``MaskDINODecoder``).

    Input: backbone features C2..C5. Output of :meth:`forward` (a dict):

    * ``pred_logits`` (bs, num_queries, num_classes): sigmoid/focal class logits, last layer.
    * ``pred_boxes`` (bs, num_queries, 4): sigmoided cxcywh, normalised w.r.t. the **padded** batch.
    * ``pred_masks`` (bs, num_queries, H/4, W/4): mask logits at 1/4 of the padded batch.
    * ``aux_outputs``: the initial prediction (from the decoder's input queries) and every layer but
      the last, as dicts of the same keys (masks only in training).
    * ``interm_outputs``: the selected encoder tokens' prediction (``pred_boxes`` = the regressed
      anchors before mask-enhanced init); None for the one-stage model (``two_stage=False``).
    * ``dn_outputs``: in training with denoising, the DN queries' prediction sets (initial + layers).

    Args:
        num_things_classes (int): Thing classes.
        num_stuff_classes (int): Stuff classes (panoptic / semantic). Classes are ordered things
            first, as mmdet's panoptic datasets do.
        num_queries (int): Matching queries: K selected from the encoder (300 upstream), or the
            number of learnable queries when ``two_stage=False`` (100 for upstream's ADE20K model).
        embed_dims (int): Hidden size (256 upstream).
        pixel_decoder (dict): :class:`MaskDINOPixelDecoder` config.
        transformer_decoder (dict): :class:`MaskDINOTransformerDecoder` config.
        box_init (str): ``'mask2box'`` (paper), ``'bitmask'`` (``_3s``) or ``'no'``.
        initial_pred (bool): Predict from the decoder's input queries too.
        two_stage (bool): Unified query selection from the encoder (default). False gives upstream's
            one-stage semantic model: learnable content queries ``query_feat`` and learnable
            unsigmoided anchors ``query_embed``, no interm output, ``box_init='no'``.
        cls_prior_prob (float, optional): Initial sigmoid probability of the class head's bias
            (focal-loss models; DINO/RetinaNet practice). None keeps ``nn.Linear``'s default init,
            which is what upstream Mask DINO does; 0.01 trained better in our small CPU runs
            (README, learning benchmark).
        dn_cfg (dict, optional): :class:`MaskDINODnQueryGenerator` arguments; None disables DN.
        loss_cls, loss_bbox, loss_iou, loss_mask, loss_dice (dict): Loss configs. A ``loss_cls``
            with ``use_sigmoid=False`` (``CrossEntropyLoss`` with ``class_weight``, the last entry
            being the no-object weight) makes the class head predict ``num_classes + 1`` softmax
            logits, as upstream's CE-trained semantic model.
        train_cfg (dict): ``assigner``, ``num_points``, ``oversample_ratio``,
            ``importance_sample_ratio``.
        test_cfg (dict): Used by the fusion head.
    """

    def __init__(self,
                 *,
                 num_things_classes: int = 80,
                 num_stuff_classes: int = 0,
                 num_queries: int = 300,
                 embed_dims: int = 256,
                 pixel_decoder: ConfigType,
                 transformer_decoder: ConfigType,
                 box_init: str = 'mask2box',
                 initial_pred: bool = True,
                 two_stage: bool = True,
                 cls_prior_prob: Optional[float] = 0.01,
                 dn_cfg: OptConfigType = None,
                 loss_cls: ConfigType = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                             alpha=0.25, loss_weight=4.0),
                 loss_bbox: ConfigType = dict(type='L1Loss', loss_weight=5.0),
                 loss_iou: ConfigType = dict(type='GIoULoss', loss_weight=2.0),
                 loss_mask: ConfigType = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                              reduction='mean', loss_weight=5.0),
                 loss_dice: ConfigType = dict(type='DiceLoss', use_sigmoid=True, activate=True,
                                              reduction='mean', naive_dice=True, eps=1.0,
                                              loss_weight=5.0),
                 train_cfg: OptConfigType = None,
                 test_cfg: OptConfigType = None,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.num_things_classes = num_things_classes
        self.num_stuff_classes = num_stuff_classes
        self.num_classes = num_things_classes + num_stuff_classes
        self.num_queries = num_queries
        self.embed_dims = embed_dims
        self.box_init = BoxInitType(box_init)
        self.initial_pred = initial_pred
        self.two_stage = two_stage
        self.cls_prior_prob = cls_prior_prob
        if not two_stage and self.box_init != BoxInitType.NONE:
            raise ValueError(f"box_init='{box_init}' needs the interm masks of query selection; "
                             "use box_init='no' with two_stage=False")
        self.pixel_decoder = MODELS.build(dict(pixel_decoder, embed_dims=embed_dims))
        self.decoder = MaskDINOTransformerDecoder(**transformer_decoder)
        if self.decoder.embed_dims != embed_dims:
            raise ValueError(f'transformer_decoder embed_dims {self.decoder.embed_dims} != '
                             f'head embed_dims {embed_dims}')
        if two_stage:
            self.memory_trans_fc = Linear(embed_dims, embed_dims)
            self.memory_trans_norm = nn.LayerNorm(embed_dims)
        else:
            self.query_feat = nn.Embedding(num_queries, embed_dims)
            self.query_embed = nn.Embedding(num_queries, 4)
        self.train_cfg = train_cfg or {}
        self.test_cfg = test_cfg or {}
        self._init_losses(loss_cls, loss_bbox, loss_iou, loss_mask, loss_dice, self.train_cfg)
        # sigmoid (focal) logits, or softmax logits with a last no-object column (CE)
        self.use_sigmoid_cls = bool(getattr(self.loss_cls, 'use_sigmoid', False))
        self.cls_out_channels = self.num_classes + (0 if self.use_sigmoid_cls else 1)
        # shared by the encoder proposals (query selection), the interm output and every layer
        self.cls_branch = Linear(embed_dims, self.cls_out_channels)
        self.reg_branch = MLP(embed_dims, embed_dims, 4, 3)
        self.mask_embed = MLP(embed_dims, embed_dims, self.pixel_decoder.mask_feature.out_channels,
                              3)
        self.dn_generator = None if dn_cfg is None else MaskDINODnQueryGenerator(
            num_classes=self.num_classes, embed_dims=embed_dims, num_matching_queries=num_queries,
            **dn_cfg)

    def init_weights(self) -> None:
        self.pixel_decoder.init_weights()
        for p in self.decoder.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        for layer in self.decoder.layers:
            layer.cross_attn.init_weights()
        if self.use_sigmoid_cls and self.cls_prior_prob is not None:
            nn.init.constant_(self.cls_branch.bias, bias_init_with_prob(self.cls_prior_prob))
        constant_init(self.reg_branch.layers[-1], 0, bias=0)  # box deltas start at 0

    # ------------------------------------------------------------------ forward
    def predict_cls_mask(self, queries: Tensor, mask_features: Tensor,
                         with_mask: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
        """Class logits and mask logits of queries (the decoder norm is applied first).

        Args:
            queries (Tensor): (bs, nq, embed_dims).
            mask_features (Tensor): (bs, mask_dims, H/4, W/4) pixel embedding.
            with_mask (bool): Compute masks (skipped for intermediate layers at test time).

        Returns:
            tuple: logits (bs, nq, cls_out_channels); masks (bs, nq, H/4, W/4) or None.
        """
        normed = self.decoder.norm(queries)
        logits = self.cls_branch(normed)
        if not with_mask:
            return logits, None
        return logits, torch.einsum('bqc,bchw->bqhw', self.mask_embed(normed), mask_features)

    def forward(self, x: Sequence[Tensor], dn: Optional[DnQueries] = None) -> dict:
        """Run the whole head. See the class docstring for the returned dict.

        Args:
            x (Sequence[Tensor]): Backbone features C2..C5, (bs, C_i, H_i, W_i).
            dn (DnQueries, optional): Denoising queries (training only).
        """
        mask_features, ms_feats = self.pixel_decoder(x)
        memory, spatial_shapes, level_start_index = flatten_levels(ms_feats[::-1])
        bs = memory.size(0)
        valid_ratios = memory.new_ones((bs, len(ms_feats), 2))
        if self.two_stage:
            query, ref_unsig, interm = self._select_queries(memory, spatial_shapes, mask_features)
        else:
            query = self.query_feat.weight[None].expand(bs, -1, -1)
            ref_unsig = self.query_embed.weight[None].expand(bs, -1, -1)
            interm = None
        attn_mask = None
        if dn is not None:
            query = torch.cat([dn.query, query], 1)
            ref_unsig = torch.cat([dn.ref_unsig, ref_unsig], 1)
            attn_mask = dn.attn_mask
        hidden_states, references = self.decoder(
            query=query, value=memory, key_padding_mask=None, self_attn_mask=attn_mask,
            reference_points=ref_unsig.sigmoid(), spatial_shapes=spatial_shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios,
            reg_branch=self.reg_branch)
        preds = self._predictions(query, hidden_states, references, mask_features)
        num_dn = 0 if dn is None else dn.num_queries
        matching = [{k: None if v is None else v[:, num_dn:] for k, v in p.items()} for p in preds]
        out = dict(matching[-1], aux_outputs=matching[:-1], interm_outputs=interm,
                   dn_outputs=None)
        if dn is not None:
            out['dn_outputs'] = [{k: None if v is None else v[:, :num_dn]
                                  for k, v in p.items()} for p in preds]
        return out

    def _select_queries(self, memory: Tensor, spatial_shapes: Tensor,
                        mask_features: Tensor) -> Tuple[Tensor, Tensor, Prediction]:
        """Unified query selection + mask-enhanced anchor box initialisation.

        Returns:
            tuple: content queries (bs, K, embed_dims) and unsigmoided anchors (bs, K, 4), both
            detached, and the interm prediction of the selected tokens.
        """
        output_memory, proposals = gen_encoder_output_proposals(memory, None, spatial_shapes)
        output_memory = self.memory_trans_norm(self.memory_trans_fc(output_memory))
        selected = select_queries(output_memory, proposals, self._foreground_logits,
                                  self.reg_branch, self.num_queries)
        interm_logits, interm_masks = self.predict_cls_mask(selected.content, mask_features)
        interm = dict(pred_logits=interm_logits, pred_boxes=selected.ref_unsig.sigmoid(),
                      pred_masks=interm_masks)
        ref_unsig = selected.ref_unsig.detach()
        if self.box_init != BoxInitType.NONE:
            ref_unsig = init_anchor_boxes(interm_masks, self.box_init)
        return selected.content.detach(), ref_unsig, interm

    def _foreground_logits(self, tokens: Tensor) -> Tensor:
        """Class logits without the no-object column (what query selection ranks)."""
        return self.cls_branch(tokens)[..., :self.num_classes]

    def _predictions(self, query: Tensor, hidden_states: Tensor, references: Tensor,
                     mask_features: Tensor) -> List[Prediction]:
        """The initial prediction (optional) plus one per decoder layer.

        Boxes of layer ``i`` are ``sigmoid(reg_branch(hs_i) + inverse_sigmoid(ref_i))`` from the normed
        output and that layer's input reference; the initial boxes are the input references.
        """
        num_layers = hidden_states.size(0)
        preds = []
        if self.initial_pred:
            logits, masks = self.predict_cls_mask(query, mask_features, self.training)
            preds.append(dict(pred_logits=logits, pred_boxes=references[0], pred_masks=masks))
        eps = self.decoder.ref_eps
        for i in range(num_layers):
            with_mask = self.training or i == num_layers - 1
            logits, masks = self.predict_cls_mask(hidden_states[i], mask_features, with_mask)
            boxes = (self.reg_branch(hidden_states[i]) +
                     inverse_sigmoid(references[i], eps=eps)).sigmoid()
            preds.append(dict(pred_logits=logits, pred_boxes=boxes, pred_masks=masks))
        return preds

    # ------------------------------------------------------------------ inference
    def predict(self, x: Sequence[Tensor],
                batch_data_samples: SampleList) -> Tuple[Tensor, Tensor, Tensor]:
        """Last-layer predictions (the fusion head upsamples only the masks it keeps).

        Returns:
            tuple: ``cls_logits`` (bs, nq, cls_out_channels); ``mask_logits`` (bs, nq, H_pad/4, W_pad/4);
            ``boxes`` (bs, nq, 4) sigmoided cxcywh normalised w.r.t. the padded batch.
        """
        out = self(x)
        return out['pred_logits'], out['pred_masks'], out['pred_boxes']
