# 12-epoch schedule (paper: 41.4 mask AP / 44.5 box AP): 12 x 7,393 iterations at batch 16,
# lr x0.1 at epochs 11 and 11.75 (the 50e schedule's relative drop points).
_base_ = './maskdino_r50_8xb2-lsj-50e_coco.py'

max_iters = 88716
param_scheduler = dict(end=max_iters, milestones=[81323, 86868])
train_cfg = dict(max_iters=max_iters)
