"""Camera-label heuristics of seed 001: keywords, arm motion, balanced fallback."""

import numpy as np
import pytest

from pi05_moe_training.dataset.labels import (
    LabelConfig,
    episode_labels,
    keyword_experts,
    label_column,
)

EXPERTS = ['l515', 'thermal']
WRISTS = ['left_wrist', 'right_wrist']
STILL = np.zeros((20, 7))


@pytest.mark.parametrize('prompt, active', [
    ('lift the hot cube', {'l515': False, 'thermal': True}),
    ('Pick up the WARM block', {'l515': False, 'thermal': True}),
    ('find the heated mug', {'l515': False, 'thermal': True}),
    ('lift the red cube', {'l515': True, 'thermal': False}),
    ('grab the green colored cup', {'l515': True, 'thermal': False}),
    ('lift the hot red cube', {'l515': True, 'thermal': True}),
    ('lift both cubes', {'l515': True, 'thermal': True}),
])
def test_keywords(prompt, active):
    labels = episode_labels(prompt, STILL, EXPERTS, episode_index=0)
    assert labels.active == active and labels.source == 'keywords'


def test_keywords_match_whole_words_only():
    # 'reduce' holds 'red', 'shot' holds 'hot', 'rightly' holds 'right': none is a keyword.
    assert keyword_experts('reduce the shot', EXPERTS, LabelConfig()) == {}
    assert keyword_experts('rightly so', WRISTS, LabelConfig()) == {}
    assert keyword_experts('use the left gripper', WRISTS, LabelConfig()) == {
        'left_wrist': ['left']}


def test_gr00t_wrist_mapping_and_custom_table():
    labels = episode_labels('hand it over with the right arm', STILL, WRISTS, 0)
    assert labels.active == {'left_wrist': False, 'right_wrist': True}
    cfg = LabelConfig(keywords={'thermal': 'steaming', 'l515': 'shiny'})
    assert episode_labels('grab the steaming cup', STILL, EXPERTS, 0, cfg).active == {
        'l515': False, 'thermal': True}
    # 'hot' is no longer a keyword: falls back
    assert episode_labels('grab the hot cup', STILL, EXPERTS, 0, cfg).source == 'fallback'


def bimanual(left_speed, right_speed, steps=50):
    t = np.linspace(0, 1, steps)[:, None]
    return np.hstack([np.sin(3 * t) * left_speed * np.ones((1, 7)),
                      np.cos(3 * t) * right_speed * np.ones((1, 7))])  # (T, 14)


def test_motion_picks_the_arm_that_moves_clearly_more():
    labels = episode_labels('pick up the cube', bimanual(1.0, 0.1), WRISTS, 0)
    assert labels.active == {'left_wrist': True, 'right_wrist': False}
    assert labels.source == 'motion'
    labels = episode_labels('pick up the cube', bimanual(0.0, 0.5), WRISTS, 0)
    assert labels.active == {'left_wrist': False, 'right_wrist': True}
    # similar motion (ratio < 1.5): no decision, balanced fallback
    assert episode_labels('pick up the cube', bimanual(1.0, 0.9), WRISTS, 0).source == 'fallback'
    # keywords win over motion
    assert episode_labels('use the left hand', bimanual(0.0, 1.0), WRISTS, 0).active == {
        'left_wrist': True, 'right_wrist': False}


def test_motion_needs_two_arms():
    # single-arm robot (7 columns): the right arm's columns 7:14 do not exist
    labels = episode_labels('pick up the cube', np.random.default_rng(0).normal(size=(30, 7)),
                            WRISTS, 0)
    assert labels.source == 'fallback'


def test_fallback_is_balanced_over_episodes():
    counts = dict.fromkeys(EXPERTS, 0)
    for i in range(10):
        labels = episode_labels('pick up the cube', STILL, EXPERTS, i)
        assert labels.source == 'fallback' and sum(labels.active.values()) == 1
        for e, on in labels.active.items():
            counts[e] += on
    assert counts == {'l515': 5, 'thermal': 5}
    assert episode_labels('x', STILL, EXPERTS, 3, LabelConfig(fallback='all')).active == {
        'l515': True, 'thermal': True}


def test_columns_and_config_errors():
    labels = episode_labels('lift the hot cube', STILL, EXPERTS, 0)
    cols = labels.columns(12)
    assert set(cols) == {label_column('l515'), label_column('thermal')}
    assert label_column('thermal') == 'annotation.camera.thermal_active'
    assert cols[label_column('thermal')].dtype == np.int64
    assert cols[label_column('thermal')].tolist() == [1] * 12
    assert cols[label_column('l515')].sum() == 0
    with pytest.raises(ValueError, match='motion_ratio=0.5'):
        LabelConfig(motion_ratio=0.5)
    with pytest.raises(ValueError, match="'7-14'"):
        LabelConfig(arm_columns={'left_wrist': '7-14'})
    with pytest.raises(ValueError, match="fallback='random'"):
        LabelConfig(fallback='random')
    with pytest.raises(ValueError, match='no expert'):
        episode_labels('x', STILL, [], 0)
