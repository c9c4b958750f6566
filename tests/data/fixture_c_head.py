# The plugin's head equivalent to ../shared/fixtures/fixture_C_config.yaml: upstream's released default
# R50 instance model (maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml: res3..res5 + one 3x3/stride-2
# level, low-to-high, mask2box box init), reduced like fixture A's head (7 classes, encoder 2 layers /
# 4 heads / FFN 128, decoder 3 layers / 8 heads / FFN 128, 20 queries, DN 10), with upstream's loss
# and cost weights and 12544 points.
_base_ = './fixture_a_head.py'
num_levels = 4
head = dict(
    box_init='mask2box',
    pixel_decoder=dict(
        num_extra_levels=1,
        level_order='low2high',
        encoder=dict(layer_cfg=dict(self_attn_cfg=dict(num_levels=num_levels)))),
    transformer_decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_levels=num_levels))),
    train_cfg=dict(num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75))
