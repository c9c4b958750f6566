"""Mask DINO's head: pixel decoder, unified query selection, denoising and the decoder."""
import inspect
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

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
from ...utils.cfg_keys import check_cfg_keys
from ..utils import (BoxInitType, HeadOutputs, PredictionSets, SegTargets, build_targets,
                     flatten_levels, gen_encoder_output_proposals, init_anchor_boxes,
                     level_shapes,
                     mask_logits, split_dn_queries, targets_as_samples)


def _init_arguments(cls: type) -> set:
    """Named ``__init__`` arguments of ``cls``, following ``**kwargs`` up the class hierarchy
    (a subclass that forwards ``**kwargs`` accepts its parent's arguments too)."""
    names = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get('__init__')
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {p.name for p in params if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return names


class InitialQueries(NamedTuple):
    """The decoder's matching queries before the first layer (:meth:`MaskDINOHead.initial_queries`).

    Attributes:
        content (Tensor): (bs, nq, embed_dims) content queries.
        ref_unsig (Tensor): (bs, nq, 4) unsigmoided cxcywh anchor boxes.
        interm (PredictionSets, optional): A prediction set to supervise with them (query
            selection's selected tokens), or None.
        self_attn_mask (Tensor, optional): (nq, nq) bool, True where a matching query may not
            attend to another (e.g. UP-DETR's patch groups); None: no restriction.
        aux (dict, optional): Tensors the query source wants its criterion to see (handed on as
            :attr:`HeadOutputs.aux`; e.g. UP-DETR's patch-to-token scores), or None.
    """
    content: Tensor
    ref_unsig: Tensor
    interm: Optional[PredictionSets] = None
    self_attn_mask: Optional[Tensor] = None
    aux: Optional[Dict[str, Tensor]] = None


@MODELS.register_module()
class MaskDINOHead(BaseModule):
    """Mask DINO head (upstream ``sem_seg_head``: ``MaskDINOEncoder`` + ``MaskDINODecoder``).

    Input: backbone features C2..C5. :meth:`forward` returns :class:`HeadOutputs`: the pixel
    embedding ``mask_features`` (bs, mask_dims, H/4, W/4) and stacked :class:`PredictionSets`
    (class logits, sigmoided cxcywh boxes normalised w.r.t. the **padded** batch, mask embeddings)
    of the matching queries (the initial prediction from the decoder's input queries, then every
    layer), of the selected encoder tokens (``interm``; None for the one-stage model) and, in
    training with denoising, of the DN queries. Masks are made only where needed: at sampled
    points or for matched queries by :class:`MaskDINOCriterion` (:meth:`loss` = forward +
    criterion), for the last layer in :meth:`predict`, and (no gradient) for the interm output's
    mask-enhanced anchor boxes.

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
            (focal-loss models; DINO/RetinaNet practice, e.g. 0.01: bias -4.595). None (default)
            keeps ``nn.Linear``'s default init (uniform +-1/sqrt(embed_dims)), as upstream Mask
            DINO; the README's learning benchmark compares both.
        dn_cfg (dict, optional): :class:`MaskDINODnQueryGenerator` arguments; None disables DN.
        loss_cls, loss_bbox, loss_iou, loss_mask, loss_dice (dict): Loss configs. A ``loss_cls``
            with ``use_sigmoid=False`` (``CrossEntropyLoss`` with ``class_weight``, the last entry
            being the no-object weight) makes the class head predict ``num_classes + 1`` softmax
            logits, as upstream's CE-trained semantic model.
        criterion (dict): The criterion's type (:class:`MaskDINOCriterion`) and any extra
            arguments; the classes, losses and ``train_cfg`` are added to it.
        train_cfg (dict): Criterion arguments: ``assigner``, ``num_points``,
            ``oversample_ratio``, ``importance_sample_ratio``.
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
                 cls_prior_prob: Optional[float] = None,
                 dn_cfg: OptConfigType = None,
                 loss_cls: ConfigType = dict(type='FocalLoss', use_sigmoid=True, gamma=2.0,
                                             alpha=0.25, loss_weight=4.0),
                 loss_bbox: ConfigType = dict(type='L1Loss', loss_weight=5.0),
                 loss_iou: ConfigType = dict(type='MaskDINOGIoULoss', loss_weight=2.0),
                 loss_mask: ConfigType = dict(type='CrossEntropyLoss', use_sigmoid=True,
                                              reduction='mean', loss_weight=5.0),
                 loss_dice: ConfigType = dict(type='DiceLoss', use_sigmoid=True, activate=True,
                                              reduction='mean', naive_dice=True, eps=1.0,
                                              loss_weight=5.0),
                 criterion: ConfigType = dict(type='MaskDINOCriterion'),
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
        criterion_cls = MODELS.get(criterion['type'])
        if criterion_cls is not None:  # its arguments, less those the head fills in
            given = {'self', 'num_things_classes', 'num_stuff_classes', 'loss_cls', 'loss_bbox',
                     'loss_iou', 'loss_mask', 'loss_dice', *criterion}
            check_cfg_keys(self.train_cfg, _init_arguments(criterion_cls) - given,
                           'model.train_cfg')
        self.criterion = MODELS.build(
            dict(criterion, num_things_classes=num_things_classes,
                 num_stuff_classes=num_stuff_classes, loss_cls=loss_cls, loss_bbox=loss_bbox,
                 loss_iou=loss_iou, loss_mask=loss_mask, loss_dice=loss_dice, **self.train_cfg))
        # sigmoid (focal) logits, or softmax logits with a last no-object column (CE)
        self.use_sigmoid_cls = self.criterion.use_sigmoid_cls
        self.cls_out_channels = self.criterion.cls_out_channels
        # shared by the encoder proposals (query selection), the interm output and every layer
        self.cls_branch = Linear(embed_dims, self.cls_out_channels)
        self.reg_branch = MLP(embed_dims, embed_dims, 4, 3)
        self.mask_embed = MLP(embed_dims, embed_dims, self.pixel_decoder.mask_feature.out_channels,
                              3)
        self.dn_generator = None if dn_cfg is None else MaskDINODnQueryGenerator(
            num_classes=self.num_classes, embed_dims=embed_dims, num_matching_queries=num_queries,
            **dn_cfg)

    def init_weights(self) -> None:
        """Upstream's initialisation: the pixel decoder's own; xavier-uniform for every matrix
        of the decoder, then deformable attention's; the box head's last layer zero (deltas
        start at 0); the class head keeps ``nn.Linear``'s default unless ``cls_prior_prob``."""
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
    def forward(self, x: Sequence[Tensor], dn: Optional[DnQueries] = None,
                **query_inputs) -> HeadOutputs:
        """Run the whole head.

        Args:
            x (Sequence[Tensor]): Backbone features C2..C5, (bs, C_i, H_i, W_i).
            dn (DnQueries, optional): Denoising queries (training only).
            **query_inputs: Passed to :meth:`initial_queries` (e.g. UP-DETR's patch features).

        Returns:
            HeadOutputs: The pixel embedding and every prediction set (no masks: see
            :func:`mask_logits`).
        """
        mask_features, ms_feats = self.pixel_decoder(x)
        memory, spatial_shapes, level_start_index = flatten_levels(ms_feats[::-1])
        shapes = level_shapes(ms_feats[::-1])
        bs = memory.size(0)
        valid_ratios = memory.new_ones((bs, len(ms_feats), 2))
        initial = self.initial_queries(memory, shapes, mask_features, **query_inputs)
        query, ref_unsig, attn_mask = initial.content, initial.ref_unsig, initial.self_attn_mask
        if dn is not None:
            num_dn = dn.query.size(1)
            query = torch.cat([dn.query, query], 1)
            ref_unsig = torch.cat([dn.ref_unsig, ref_unsig], 1)
            if attn_mask is not None:  # the matching queries' own restriction, inside DN's mask
                blocked = dn.attn_mask.clone()
                blocked[num_dn:, num_dn:] |= attn_mask
                attn_mask = blocked
            else:
                attn_mask = dn.attn_mask
        hidden_states, references = self.decoder(
            query=query, value=memory, key_padding_mask=None, self_attn_mask=attn_mask,
            reference_points=ref_unsig.sigmoid(), spatial_shapes=spatial_shapes,
            level_shapes=shapes,
            level_start_index=level_start_index, valid_ratios=valid_ratios,
            reg_branch=self.reg_branch)
        preds = self._predictions(query, hidden_states, references)
        if dn is None:
            return HeadOutputs(mask_features, preds, initial.interm, aux=initial.aux)
        dn_preds, matching = split_dn_queries(preds, dn.num_queries)
        return HeadOutputs(mask_features, matching, initial.interm, dn_preds, initial.aux)

    def initial_queries(self, memory: Tensor, level_shapes: Sequence[Tuple[int, int]],
                        mask_features: Tensor, **query_inputs) -> InitialQueries:
        """Where the decoder's matching queries come from: the hook to override.

        Mask DINO: unified query selection with mask-enhanced anchors (``two_stage``), or
        learnable content queries and anchors (upstream's one-stage semantic model). A
        subclass changes the source (UP-DETR's patch queries: ``projects/updetr``) without
        touching the encoder, the decoder or the criterion.

        Args:
            memory (Tensor): (bs, num_tokens, embed_dims) encoder output, decoder level order.
            level_shapes (list[tuple]): ``(h, w)`` of every level of ``memory``.
            mask_features (Tensor): (bs, mask_dims, H/4, W/4) pixel embedding.
            **query_inputs: What the caller of :meth:`forward` passed (unused here).

        Returns:
            InitialQueries: Content queries, anchors, an optional interm prediction set and an
            optional self-attention mask of the matching queries.
        """
        if self.two_stage:
            return InitialQueries(*self._select_queries(memory, level_shapes, mask_features))
        bs = memory.size(0)
        return InitialQueries(self.query_feat.weight[None].expand(bs, -1, -1),
                              self.query_embed.weight[None].expand(bs, -1, -1))

    def _heads(self, queries: Tensor, boxes: Tensor) -> PredictionSets:
        """Prediction sets of stacked queries: class logits and mask embeddings from the normed
        queries (the decoder norm is applied first), with the given boxes.

        Args:
            queries (Tensor): (num_sets, bs, nq, embed_dims).
            boxes (Tensor): (num_sets, bs, nq, 4) sigmoided cxcywh.
        """
        normed = self.decoder.norm(queries)
        return PredictionSets(self.cls_branch(normed), boxes, self.mask_embed(normed), normed)

    def _select_queries(self, memory: Tensor, level_shapes: List[Tuple[int, int]],
                        mask_features: Tensor) -> Tuple[Tensor, Tensor, PredictionSets]:
        """Unified query selection + mask-enhanced anchor box initialisation.

        Returns:
            tuple: content queries (bs, K, embed_dims) and unsigmoided anchors (bs, K, 4), both
            detached, and the interm prediction of the selected tokens (one set).
        """
        output_memory, proposals = gen_encoder_output_proposals(memory, None, level_shapes)
        output_memory = self.memory_trans_norm(self.memory_trans_fc(output_memory))
        selected = select_queries(output_memory, proposals, self._foreground_logits,
                                  self.reg_branch, self.num_queries)
        interm = self._heads(selected.content[None], selected.ref_unsig.sigmoid()[None])
        ref_unsig = selected.ref_unsig.detach()
        if self.box_init != BoxInitType.NONE:
            with torch.no_grad():  # full-resolution interm masks: only for the anchors
                ref_unsig = init_anchor_boxes(mask_logits(interm.mask_embeds[0], mask_features),
                                              self.box_init)
        return selected.content.detach(), ref_unsig, interm

    def _foreground_logits(self, tokens: Tensor) -> Tensor:
        """Class logits without the no-object column (what query selection ranks)."""
        return self.cls_branch(tokens)[..., :self.num_classes]

    def _predictions(self, query: Tensor, hidden_states: Tensor,
                     references: Tensor) -> PredictionSets:
        """The initial prediction (optional) plus one per decoder layer, stacked.

        Boxes of layer ``i`` are ``sigmoid(reg_branch(hs_i) + inverse_sigmoid(ref_i))`` from the
        normed output and that layer's input reference (undetached: the previous layer's box, so
        the box loss of layer ``i`` also trains layer ``i - 1``'s delta); the initial boxes are the
        input references.
        """
        boxes = (self.reg_branch(hidden_states) +
                 inverse_sigmoid(references[:-1], eps=self.decoder.ref_eps)).sigmoid()
        states = hidden_states
        if self.initial_pred:
            states = torch.cat([query[None], hidden_states])
            boxes = torch.cat([references[:1], boxes])
        return self._heads(states, boxes)

    # ------------------------------------------------------------------ training
    def get_targets(self, batch_data_samples: SampleList) -> List[SegTargets]:
        """GT labels, boxes and masks of every image in the padded-batch frame
        (:func:`build_targets`)."""
        return build_targets(batch_data_samples, self.num_things_classes, self.num_classes,
                             self.cls_branch.weight.device)

    def loss(self, x: Sequence[Tensor], batch_data_samples: SampleList) -> Dict[str, Tensor]:
        """Forward with denoising queries, then every loss (:class:`MaskDINOCriterion`)."""
        targets = self.get_targets(batch_data_samples)
        dn = None if self.dn_generator is None else self.dn_generator(
            targets_as_samples(targets))
        return self.criterion(self(x, dn), targets, dn)

    # ------------------------------------------------------------------ inference
    def predict(self, x: Sequence[Tensor], batch_data_samples: SampleList,
                **query_inputs) -> Tuple[Tensor, Tensor, Tensor]:
        """Last-layer predictions (the fusion head upsamples only the masks it keeps);
        ``query_inputs`` go to :meth:`initial_queries`.

        Returns:
            tuple: ``cls_logits`` (bs, nq, cls_out_channels); ``mask_logits``
            (bs, nq, H_pad/4, W_pad/4);
            ``boxes`` (bs, nq, 4) sigmoided cxcywh normalised w.r.t. the padded batch.
        """
        out = self(x, **query_inputs)
        last = out.layers[-1]
        return (last.cls_logits[0], mask_logits(last.mask_embeds[0], out.mask_features),
                last.boxes[0])
