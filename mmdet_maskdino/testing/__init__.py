from .fixture_a import FIXTURE_A, build_fixture_a_head, run_fixture_a
from .helpers import (REPO_ROOT, build_small_maskdino, get_repo_config, make_det_batch,
                      make_shapes_data, mmdet_tool, run_tool)

__all__ = ['REPO_ROOT', 'get_repo_config', 'make_shapes_data', 'run_tool', 'mmdet_tool',
           'build_small_maskdino', 'make_det_batch', 'FIXTURE_A', 'build_fixture_a_head',
           'run_fixture_a']
