"""Instance-level agreement of prediction dumps with a reference dump (e.g. ONNX Runtime int8
against PyTorch fp32), from ``tools/test.py --out FILE.pkl`` runs on the same images.

Example::

    python tools/test.py CONFIG CKPT --out fp32.pkl
    python tools/test.py CONFIG --onnx m_int8.onnx --out int8.pkl
    python tools/analysis_tools/compare_predictions.py fp32.pkl int8.pkl

For each image the ``--top-k`` highest-scoring reference instances are paired with the other
dump's same-label instance of highest box IoU (see
:func:`mmdet_maskdino.deployment.parity.instance_agreement`).
"""
import argparse
import pickle

from mmdet_maskdino.deployment.parity import instance_agreement


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('reference', help='the reference dump (.pkl)')
    parser.add_argument('others', nargs='+', help='dumps to compare with it')
    parser.add_argument('--top-k', type=int, default=10, help='reference instances per image')
    args = parser.parse_args()

    def load(path):
        with open(path, 'rb') as f:
            return pickle.load(f)
    reference = load(args.reference)
    print(f'| dump (against {args.reference}, top {args.top_k} per image) | instances | '
          'box IoU median | IoU >= 0.9 | IoU >= 0.5 | score diff median | p95 | max |')
    print('|---|---|---|---|---|---|---|---|')
    for path in args.others:
        a = instance_agreement(reference, load(path), args.top_k)
        print(f"| {path} | {a['instances']:.0f} | {a['iou_median']:.3f} | {a['iou_ge_0.9']:.1%} | "
              f"{a['iou_ge_0.5']:.1%} | {a['score_diff_median']:.4f} | "
              f"{a['score_diff_p95']:.4f} | {a['score_diff_max']:.4f} |")


if __name__ == '__main__':
    main()
