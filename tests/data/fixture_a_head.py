# The plugin's head equivalent to ../shared/fixtures/fixture_A_config.yaml (upstream's
# maskdino_R50_bs16_50ep_3s.yaml reduced): 7 classes, 3 levels res3..res5 high-to-low, no extra level,
# encoder 2 layers / 4 heads / FFN 128, decoder 3 layers / 8 heads / FFN 128, 20 queries, DN 10,
# bitmask box init, 30 detections per image.
custom_imports = dict(imports=['mmdet_maskdino'], allow_failed_imports=False)
embed_dims = 256
head = dict(
    type='MaskDINOHead',
    num_things_classes=7,
    num_stuff_classes=0,
    num_queries=20,
    embed_dims=embed_dims,
    box_init='bitmask',
    initial_pred=True,
    dn_cfg=dict(label_noise_scale=0.4, box_noise_scale=0.4,
                group_cfg=dict(dynamic=True, num_dn_queries=10)),
    pixel_decoder=dict(
        type='MaskDINOPixelDecoder',
        in_channels=[256, 512, 1024, 2048],
        mask_dims=256,
        num_extra_levels=0,
        level_order='high2low',
        encoder=dict(
            num_layers=2,
            layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=embed_dims, num_heads=4, num_levels=3, num_points=4,
                                   dropout=0.0, batch_first=True),
                ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128, ffn_drop=0.0))),
        positional_encoding=dict(num_feats=embed_dims // 2, normalize=True)),
    transformer_decoder=dict(
        num_layers=3,
        return_intermediate=True,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, dropout=0.0),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=8, num_levels=3, num_points=4,
                                dropout=0.0, batch_first=True),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=128, ffn_drop=0.0))),
    test_cfg=dict(max_per_image=30))
