"""Shared fixtures: one small generated shapes dataset per test session."""
import pytest

from mmdet_maskdino.datasets import ShapesSpec
from mmdet_maskdino.testing import make_shapes_data

#: the spec of the dataset shared by the tests: small, fast, with empty images and overlaps.
TEST_SPEC = ShapesSpec(num_train=8, num_val=4, img_size=(64, 64), max_objects=4, empty_ratio=0.2,
                       seed=1)


@pytest.fixture(scope='session')
def shapes_root(tmp_path_factory) -> str:
    """Root of a generated shapes dataset (COCO instance + panoptic + semantic)."""
    return make_shapes_data(str(tmp_path_factory.mktemp('shapes')), TEST_SPEC) + '/'
