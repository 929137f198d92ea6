"""pi05_moe_policy: PI0.5 with router-gated camera fusion.

``Policy`` is exported lazily so that importing the ROS-free numpy helpers in
``pi05_moe_policy.core`` never pulls in torch.
"""

from typing import Any

__all__ = ['Policy']


def __getattr__(name: str) -> Any:
    if name == 'Policy':
        from pi05_moe_policy.policy import Policy

        return Policy
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
