# The plugin's head equivalent to ../shared/fixtures/fixture_C_config.yaml: upstream's released default
# R50 instance model (maskdino_R50_bs16_50ep_3s_dowsample1_2048.yaml: res3..res5 + one 3x3/stride-2
# level, low-to-high, mask2box box init) reduced to 7 classes, encoder 2 layers / 4 heads / FFN 128,
# decoder 3 layers / 8 heads / FFN 128, 20 queries, DN 10; the upstream loss and cost weights.
custom_imports = dict(imports=['mmdet_maskdino'], allow_failed_imports=False)
embed_dims = 256
num_levels = 4
head = dict(
    type='MaskDINOHead',
    num_things_classes=7,
    num_stuff_classes=0,
    num_queries=20,
    embed_dims=embed_dims,
    box_init='mask2box',
    initial_pred=True,
    dn_cfg=dict(label_noise_scale=0.4, box_noise_scale=0.4,
                group_cfg=dict(dynamic=True, num_dn_queries=10)),
    pixel_decoder=dict(
        type='MaskDINOPixelDecoder',
        in_channels=[256, 512, 1024, 2048],
        mask_dims=256,
        num_extra_levels=1,
        level_order='low2high',
        encoder=dict(
            num_layers=2,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4, num_levels=num_levels,
                                   num_points=4, dropout=0.0, batch_first=True),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128, ffn_drop=0.0))),
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True)),
    transformer_decoder=dict(
        num_layers=3,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, num_levels=num_levels,
                                num_points=4, dropout=0.0, batch_first=True),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128, ffn_drop=0.0))),
    train_cfg=dict(num_points=12544, oversample_ratio=3.0, importance_sample_ratio=0.75))
