# 24-epoch schedule (paper: 44.2 mask AP / 48.4 box AP): lr x0.1 at epochs 22 and 23.5.
_base_ = './maskdino_r50_8xb2-lsj-50e_coco.py'

max_iters = 177432
param_scheduler = dict(end=max_iters, milestones=[162646, 173736])
train_cfg = dict(max_iters=max_iters)
