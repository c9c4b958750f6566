# Upstream's `_3s` variant: 3 levels C3-C5 ordered high-to-low (no extra 1/64 level), encoder FFN 1024,
# `bitmask` box initialisation.
_base_ = './maskdino_r50_8xb2-lsj-50e_coco.py'

num_levels = 3
model = dict(
    panoptic_head=dict(
        box_init='bitmask',
        pixel_decoder=dict(
            num_extra_levels=0,
            level_order='high2low',
            encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels),
                                        ffn_cfg=dict(feedforward_channels=1024)))),
        transformer_decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels)))))
