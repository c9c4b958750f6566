"""Installation script of mmdet-maskdino (``pip install -e .[tests]``)."""
import os.path as osp

from setuptools import find_packages, setup


def get_version() -> str:
    """Read ``__version__`` from ``mmdet_maskdino/version.py`` without importing the package."""
    namespace: dict = {}
    with open(osp.join(osp.dirname(__file__), 'mmdet_maskdino', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


setup(
    name='mmdet-maskdino',
    version=get_version(),
    description='Mask DINO as an MMDetection 3.x plugin',
    long_description=open(osp.join(osp.dirname(__file__), 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['mmdet_maskdino', 'mmdet_maskdino.*']),
    python_requires='>=3.8',
    # torch is deliberately not listed: users pick the build (CPU/CUDA) that matches their machine, and
    # mmcv's compiled ops must be built against that same torch.
    install_requires=[
        'mmengine>=0.10,<1',
        'mmcv>=2.0,<2.2',
        'mmdet>=3.3,<3.4',
        'pycocotools',
        'scipy',
        'numpy',
    ],
    extras_require={
        'tests': ['pytest', 'matplotlib'],
        # ONNX export (torch's TorchScript-based exporter) and ONNX Runtime inference
        'deploy': ['onnx>=1.14', 'onnxruntime>=1.16'],
    },
    zip_safe=False,
)
