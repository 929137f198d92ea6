"""DART-style noise for scripted demonstrations: a smooth random offset on the executed targets.

The robot executes the expert's joint targets plus an Ornstein-Uhlenbeck offset, while the bag
records the expert's clean targets as the actions. The dataset then holds states off the
expert's path labelled with the way back to it, which is what a policy needs when latency or its
own error puts it there (Laskey et al., "DART: Noise Injection for Robust Imitation Learning",
CoRL 2017). Only the six arm joints are perturbed; the gripper command stays the expert's.
"""

from __future__ import annotations

import numpy as np


class OUNoise:
    """Offsets x_k with stationary std `sigma` and correlation time `tau_s`, starting at 0.

    x_{k+1} = a x_k + sqrt(1 - a^2) sigma eps_k, a = exp(-dt / tau_s), eps_k ~ N(0, I).
    """

    def __init__(self, sigma: float, tau_s: float, dt: float, dims: int, seed: int):
        if sigma < 0 or tau_s <= 0 or dt <= 0:
            raise ValueError(f'OUNoise needs sigma >= 0, tau_s > 0, dt > 0; got sigma={sigma!r}, '
                             f'tau_s={tau_s!r}, dt={dt!r}')
        self.sigma = sigma
        self._a = float(np.exp(-dt / tau_s))
        self._b = float(np.sqrt(1.0 - self._a ** 2)) * sigma
        self._rng = np.random.default_rng(seed)
        self.value = np.zeros(dims)  # (dims,)

    def step(self) -> np.ndarray:
        """Advance one period and return the offset (dims,)."""
        self.value = self._a * self.value + self._b * self._rng.standard_normal(self.value.shape)
        return self.value

    def perturb(self, action: np.ndarray) -> np.ndarray:
        """(7,) arm targets + gripper -> the same with the next offset added to the arm joints."""
        out = np.array(action, dtype=np.float64)
        if self.sigma > 0:
            out[:len(self.value)] += self.step()
        return out
