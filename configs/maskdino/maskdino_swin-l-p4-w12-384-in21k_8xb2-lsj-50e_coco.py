# Swin-L backbone (paper: 52.3 mask AP / 59.0 box AP at 50 epochs).
_base_ = './maskdino_r50_8xb2-lsj-50e_coco.py'

pretrained = 'https://github.com/SwinTransformer/storage/releases/download/v1.0.0/swin_large_patch4_window12_384_22k.pth'  # noqa
model = dict(
    backbone=dict(
        _delete_=True,
        type='SwinTransformer',
        pretrain_img_size=384,
        embed_dims=192,
        depths=[2, 2, 18, 2],
        num_heads=[6, 12, 24, 48],
        window_size=12,
        mlp_ratio=4,
        qkv_bias=True,
        qk_scale=None,
        drop_rate=0.,
        attn_drop_rate=0.,
        drop_path_rate=0.3,
        patch_norm=True,
        out_indices=(0, 1, 2, 3),
        with_cp=False,
        convert_weights=True,
        frozen_stages=-1,
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    panoptic_head=dict(pixel_decoder=dict(in_channels=[192, 384, 768, 1536])))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'backbone.patch_embed.norm': dict(lr_mult=0.1, decay_mult=0.0),
        'backbone.norm': dict(lr_mult=0.1, decay_mult=0.0),
        'absolute_pos_embed': dict(lr_mult=0.1, decay_mult=0.0),
        'relative_position_bias_table': dict(lr_mult=0.1, decay_mult=0.0),
    }))
