# mmdet's own DINO (the detection specialist of the model-zoo comparison), shrunk like the CPU demo
# models: ResNet-18 from scratch, 2 encoder / 3 decoder layers, 30 queries, 20 denoising queries, 4
# classes, AdamW 1e-3 with clip 0.1 (as the Mask DINO demo). Width 256 with FFN 512: mmdet's
# DinoTransformerDecoder hard-wires its query sine embedding to 256 channels (128 per coordinate),
# so it cannot run at the demo models' 64. The
# dataset, image size, schedule and seed are set by tools/analysis_tools/zoo_compare.py, the same for
# every model it compares (this file keeps mmdet's COCO data section).
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'

custom_imports = dict(imports=['mmdet_maskdino'], allow_failed_imports=False)
runner_type = 'mmdet.CheckedRunner'

num_classes = 4
embed_dims = 256
model = dict(
    num_queries=30,
    backbone=dict(depth=18, frozen_stages=-1, init_cfg=None),  # no pretrained weights offline
    neck=dict(in_channels=[128, 256, 512], out_channels=embed_dims),
    encoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512))),
    decoder=dict(
        num_layers=3,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=embed_dims, num_heads=8),
            cross_attn_cfg=dict(embed_dims=embed_dims, num_heads=8),
            ffn_cfg=dict(embed_dims=embed_dims, feedforward_channels=512))),
    positional_encoding=dict(num_feats=embed_dims // 2),
    bbox_head=dict(num_classes=num_classes, embed_dims=embed_dims),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=20)),
    test_cfg=dict(max_per_img=30))
metainfo = dict(classes=('circle', 'square', 'triangle', 'cross'))
train_dataloader = dict(dataset=dict(metainfo=metainfo))
val_dataloader = dict(dataset=dict(metainfo=metainfo))
test_dataloader = val_dataloader
optim_wrapper = dict(optimizer=dict(lr=1e-3), clip_grad=dict(max_norm=0.1))
randomness = dict(seed=0)
