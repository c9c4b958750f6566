"""Training parity with the authors' Mask DINO on ../shared/fixtures/fixture_C.pt (FIXTURES-C.md).

One training step of upstream's released default R50 instance model (reduced sizes), recorded with
and without denoising. :func:`mmdet_maskdino.testing.fixture_c.run_case` converts the upstream
weights with the plugin's converter into the plugin's head (``tests/data/fixture_c_head.py``) and
runs ``head.loss`` on the recorded features and targets inside ``shape_keyed_rng`` (section 5);
:func:`compare` pairs every recorded item with the plugin's and section 13's tolerance: the DN
inputs made by the plugin's own generator, every prediction set, the matching (exact) and cost
matrices of every set, every loss term (names mapped), the total, the gradients, and the exact
zero-gradient facts of section 12. Each test below asserts one group of rows.

Where the plugin differs on purpose, nothing here depends on it: GT boxes are normalised by the
padded size where upstream uses the image size (equal with LSJ and here), and with more GT in an image than
``num_dn_queries`` the plugin keeps one DN group where upstream drops denoising (not exercised).
Without DN the plugin has no label embedding (upstream keeps one with an all-zero gradient).
"""
import os.path as osp

import pytest
import torch

from mmdet_maskdino.testing.fixture_c import FIXTURES, compare, plugin_loss_key, run_case

FIXTURE = osp.join(FIXTURES, 'fixture_C.pt')
pytestmark = pytest.mark.skipif(
    not osp.isfile(FIXTURE), reason=f'upstream fixture {FIXTURE} not present (needs ../shared)')


@pytest.fixture(scope='module')
def fx():
    return torch.load(FIXTURE, weights_only=True)


@pytest.fixture(scope='module', params=['dn', 'nodn'])
def rows(request, fx):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fixture's thread count
    try:
        run = run_case(fx, request.param)
        yield request.param, run, compare(fx, request.param, run)
    finally:
        torch.set_num_threads(threads)


def _assert_group(rows, group: str, count: int) -> None:
    selected = [r for r in rows if r.group == group]
    assert len(selected) == count, [r.item for r in selected]
    bad = [f'{r.item}: {r.diff:.3g} vs {r.tol:g}' for r in selected if not r.ok]
    assert not bad, bad


def test_loss_names_map_one_to_one():
    assert plugin_loss_key('loss_ce') == 'loss_cls'
    assert plugin_loss_key('loss_giou_dn_1') == 'dn.d1.loss_iou'
    assert plugin_loss_key('loss_mask_interm') == 'interm.loss_mask'
    with pytest.raises(KeyError):
        plugin_loss_key('loss_ce_interm_dn')  # upstream lists it in weight_dict; never computed


def test_denoising_inputs_from_the_plugin_generator(rows):
    case, run, r = rows
    if case == 'nodn':
        assert run['dn'] is None and run['outputs'].dn is None
    _assert_group(r, 'DN inputs', 5 if case == 'dn' else 0)


def test_every_prediction_set(rows):
    case, _, r = rows
    num_sets = 9 if case == 'dn' else 5
    _assert_group(r, 'predictions', 1 + 5 * num_sets + (2 if case == 'dn' else 0) + 3)


def test_matching_of_every_set_is_exact_and_costs_agree(rows):
    case, _, r = rows
    _assert_group(r, 'matching', 1 + 5 * 2 + (4 * 2 if case == 'dn' else 0))
    _assert_group(r, 'costs', 5 * 2 * 6)


def test_every_loss_term_and_the_total(rows):
    case, _, r = rows
    _assert_group(r, 'losses', 1 + (45 if case == 'dn' else 25) + 1)


def test_gradients_of_every_parameter_and_feature(rows, fx):
    case, _, r = rows
    grads = fx['cases'][case]['grads']
    _assert_group(r, 'gradients', 1 + 148 + 1 + 2 * len(grads['full']) + 4 -
                  (1 if case == 'nodn' else 0))


def test_zero_gradient_facts(rows):
    """Section 12: only the interm losses reach enc_output, the initial prediction's box losses
    have no gradient, matching-set losses never reach label_enc (matching queries never see DN
    queries)."""
    case, _, r = rows
    _assert_group(r, 'zero gradients', 6 if case == 'dn' else 3)
