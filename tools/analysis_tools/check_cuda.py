"""One command for the day a GPU is present: is Mask DINO right and fast on CUDA?

1. mmcv's CUDA deformable attention against the plugin's CPU path (the gather it trains with on a
   CPU), forward and backward, fp32 and fp16, random inputs with odd level sizes;
2. one fp16-AMP training step of the demo config and of the R50 config against fp32 (same weights,
   same random draws): finite, losses and gradient norm close;
3. Mask DINO R50 against mmdet's Mask2Former R50 on the GPU: training step and inference time,
   peak memory (``benchmark_speed.py``'s workers, run in turn).

Prints markdown tables. Without a CUDA device it says so and exits 0.

Example::

    python tools/analysis_tools/check_cuda.py            # everything (about 5 minutes on an H100)
    python tools/analysis_tools/check_cuda.py --skip-speed
"""
import argparse
import os.path as osp
import sys

import torch

sys.path.insert(0, osp.dirname(__file__))

from mmdet_maskdino.benchmarks.cuda_check import (compare_losses, differences,  # noqa: E402
                                                  forward_and_grads, loss_step, msda_inputs)

CONFIGS = {'demo (ResNet-18, 128 px)': ('configs/demo/maskdino_r18_shapes.py', 128),
           'R50 (released model, 512 px)': ('configs/maskdino_r50.py', 512)}


def check_msda() -> None:
    from mmcv.ops.multi_scale_deform_attn import MultiScaleDeformableAttnFunction

    from mmdet_maskdino.models.layers.msda_gather import multi_scale_deformable_attn_gather

    def cuda_op(value, shapes, start, locations, weights):
        return MultiScaleDeformableAttnFunction.apply(value, shapes, start, locations, weights, 64)

    inputs = msda_inputs()
    reference = forward_and_grads(multi_scale_deformable_attn_gather, inputs, 'cpu',
                                  torch.float64)
    print('\n### mmcv CUDA deformable attention vs the CPU gather (fp64 reference), levels '
          f'{inputs["spatial_shapes"].tolist()}\n')
    print('| dtype | item | max abs diff | relative to max | finite |')
    print('|---|---|---|---|---|')
    for dtype in (torch.float32, torch.float16):
        rows = differences(forward_and_grads(cuda_op, inputs, 'cuda', dtype), reference)
        for r in rows:
            print(f'| {str(dtype)[6:]} | {r["item"]} | {r["max_abs"]:.3g} | '
                  f'{r["rel_to_max"]:.3g} | {r["finite"]} |')


def check_amp_steps() -> None:
    from benchmark_speed import build

    from mmdet_maskdino.benchmarks.speed import crowded_images, training_batch
    print('\n### One fp16-AMP training step vs fp32 (same weights and draws)\n')
    print('| config | total fp32 | total fp16 | rel. diff | worst term (rel.) | '
          'grad norm rel. diff | finite |')
    print('|---|---|---|---|---|---|---|')
    for name, (config, size) in CONFIGS.items():
        torch.manual_seed(0)
        model = build(config, 'cuda', size).train()
        batch = training_batch(model, crowded_images(f'data/bench_{size}/', size), 'cuda')
        fp32 = loss_step(model, batch, 'cuda')
        amp = loss_step(model, batch, 'cuda', torch.float16)
        c = compare_losses(amp, fp32)
        print(f'| {name} | {c["total_fp32"]:.4f} | {c["total_amp"]:.4f} | {c["total_rel"]:.2e} '
              f'| {c["worst_term"]} ({c["worst_rel"]:.2e}) | {c["grad_norm_rel"]:.2e} | '
              f'{c["finite"]} |')
        del model, batch
        torch.cuda.empty_cache()


def check_speed(sizes) -> None:
    import subprocess
    cmd = [sys.executable, osp.join(osp.dirname(__file__), 'benchmark_speed.py'), '--device',
           'cuda', '--sizes', *sizes, '--train-sizes', *[s.split('x')[0] for s in sizes],
           '--no-onnx']
    print(f'\n### Speed on the GPU: {" ".join(cmd[1:])}\n', flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--skip-speed', action='store_true')
    parser.add_argument('--sizes', nargs='+', default=['512x512', '1024x1024'])
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print('check_cuda: no CUDA device here (torch.cuda.is_available() is False); nothing to '
              'check. Run it on a machine with a GPU and a CUDA build of torch and mmcv.')
        return
    print(f'device: {torch.cuda.get_device_name()}, torch {torch.__version__}, CUDA '
          f'{torch.version.cuda}')
    check_msda()
    check_amp_steps()
    if not args.skip_speed:
        check_speed(args.sizes)


if __name__ == '__main__':
    main()
