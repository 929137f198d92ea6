"""Camera labels: which expert camera an episode needs, by the heuristics of seed 001. Pure.

The labels supervise the camera router (focal routing loss). Three rules, in order:
1. **Keywords** in the prompt (a configurable table): e.g. hot/warm/heat/thermal -> ``thermal``,
   colour words -> ``l515``, left/right -> ``left_wrist``/``right_wrist`` (GR00T's mapping);
   "both" -> every expert. Only experts of the episode count; every matched expert is active.
2. **Motion**, for bimanual robots: when two or more experts have action columns (their arm),
   the arm that moves clearly more (``motion_ratio`` times the next) marks its camera active.
3. **Fallback**: balanced over the dataset, expert ``episode_index % N`` is active.

Labels are per episode (every frame gets the same values), stored as the int columns
``annotation.camera.<expert>_active`` (0/1).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from pi05_moe_policy.params import check, param

DEFAULT_KEYWORDS = {
    'thermal': 'hot, hotter, hottest, warm, warmer, warmest, heat, heated, heating, thermal, '
               'temperature, cold, colder, coldest, cool, cooler, frozen, ice',
    'l515': 'red, green, blue, yellow, orange, purple, pink, black, white, grey, gray, brown, '
            'colour, color, coloured, colored',
    'left_wrist': 'left',
    'right_wrist': 'right',
}
DEFAULT_ARM_COLUMNS = {'left_wrist': '0:7', 'right_wrist': '7:14'}


def label_column(expert: str) -> str:
    """Dataset column of ``expert``'s label."""
    return f'annotation.camera.{expert}_active'


def parse_slice(text: str) -> slice:
    """``'0:7'`` -> ``slice(0, 7)`` (raises ValueError naming the text)."""
    match = re.fullmatch(r'\s*(\d+)\s*:\s*(\d+)\s*', text)
    if not match or int(match[1]) >= int(match[2]):
        raise ValueError(f'{text!r}: expected a column range START:STOP with START < STOP')
    return slice(int(match[1]), int(match[2]))


@dataclass
class LabelConfig:
    """Camera-label heuristics (``pi05-moe convert`` options; YAML-able)."""

    keywords: dict[str, str] = param(
        dict(DEFAULT_KEYWORDS), 'expert camera -> comma-separated words in a prompt that call '
        'for it (whole words, case-insensitive)')
    all_keywords: str = param('both', 'comma-separated words that make every expert active')
    arm_columns: dict[str, str] = param(
        dict(DEFAULT_ARM_COLUMNS), 'expert camera -> START:STOP action columns of the arm it '
        'watches (motion heuristic, bimanual robots)')
    motion_ratio: float = param(1.5, 'an arm whose motion is this many times the next arm\'s '
                                'marks its camera active')
    fallback: str = param('alternate', "'alternate' (expert episode_index % N, balanced) or "
                          "'all'")

    def __post_init__(self):
        check(all(_words(v) for v in self.keywords.values()), self, 'keywords',
              'a non-empty word list per expert')
        for text in self.arm_columns.values():
            try:
                parse_slice(text)
            except ValueError as exc:
                check(False, self, 'arm_columns', str(exc))
        check(self.motion_ratio >= 1.0, self, 'motion_ratio', '>= 1')
        check(self.fallback in ('alternate', 'all'), self, 'fallback', "'alternate' or 'all'")


@dataclass
class EpisodeLabels:
    """The labels of one episode and why."""

    active: dict[str, bool]  # expert -> active
    source: str  # 'keywords' | 'motion' | 'fallback'
    detail: str  # e.g. "'hot' -> thermal"

    def columns(self, length: int) -> dict[str, np.ndarray]:
        """``{label_column(expert): (T,) int64}`` for an episode of ``length`` frames."""
        return {label_column(e): np.full(length, int(on), dtype=np.int64)
                for e, on in self.active.items()}


def _words(text: str) -> list[str]:
    return [w.strip().lower() for w in text.split(',') if w.strip()]


def keyword_experts(prompt: str, experts: list[str], cfg: LabelConfig) -> dict[str, list[str]]:
    """expert -> the keywords of ``prompt`` that call for it (only experts with a match)."""
    tokens = set(re.findall(r"[a-z]+(?:'[a-z]+)?", prompt.lower()))
    if tokens & set(_words(cfg.all_keywords)):
        return {e: sorted(tokens & set(_words(cfg.all_keywords))) for e in experts}
    found = {}
    for expert in experts:
        hits = sorted(tokens & set(_words(cfg.keywords.get(expert, ''))))
        if hits:
            found[expert] = hits
    return found


def arm_motion(actions: np.ndarray, columns: slice) -> float:
    """Total path length of an arm's action columns: sum_t ||a[t+1] - a[t]|| over (T, A)."""
    part = np.asarray(actions, dtype=np.float64)[:, columns]  # (T, k)
    if part.shape[0] < 2 or part.shape[1] == 0:
        return 0.0
    return float(np.linalg.norm(np.diff(part, axis=0), axis=1).sum())


def motion_expert(actions: np.ndarray, experts: list[str], cfg: LabelConfig
                  ) -> tuple[str, dict[str, float]] | None:
    """The expert whose arm clearly moves most, with every arm's motion; None if unclear."""
    arms = {e: parse_slice(cfg.arm_columns[e]) for e in experts if e in cfg.arm_columns}
    width = np.asarray(actions).shape[1] if np.ndim(actions) == 2 else 0
    arms = {e: s for e, s in arms.items() if s.stop <= width}
    if len(arms) < 2:
        return None
    motion = {e: arm_motion(actions, s) for e, s in arms.items()}
    ranked = sorted(motion, key=motion.get, reverse=True)
    best, runner_up = motion[ranked[0]], motion[ranked[1]]
    if best > 0 and best >= cfg.motion_ratio * runner_up:
        return ranked[0], motion
    return None


def episode_labels(prompt: str, actions: np.ndarray, experts: list[str], episode_index: int,
                   cfg: LabelConfig | None = None) -> EpisodeLabels:
    """Label one episode: keywords, else motion, else the balanced fallback.

    Args:
        prompt: the episode's instruction.
        actions: (T, A) the episode's actions (motion heuristic).
        experts: the expert cameras, in router order.
        episode_index: position in the dataset (fallback balance).
    """
    cfg = cfg or LabelConfig()
    if not experts:
        raise ValueError('episode_labels: no expert cameras to label')
    hits = keyword_experts(prompt, experts, cfg)
    if hits:
        detail = ', '.join(f'{"/".join(words)} -> {e}' for e, words in hits.items())
        return EpisodeLabels({e: e in hits for e in experts}, 'keywords', detail)
    moved = motion_expert(actions, experts, cfg)
    if moved is not None:
        expert, motion = moved
        detail = ', '.join(f'{e} {m:.3g}' for e, m in motion.items())
        return EpisodeLabels({e: e == expert for e in experts}, 'motion',
                             f'arm motion {detail} -> {expert}')
    if cfg.fallback == 'all':
        return EpisodeLabels(dict.fromkeys(experts, True), 'fallback', 'all experts')
    chosen = experts[episode_index % len(experts)]
    return EpisodeLabels({e: e == chosen for e in experts}, 'fallback',
                         f'episode {episode_index} % {len(experts)} -> {chosen}')
