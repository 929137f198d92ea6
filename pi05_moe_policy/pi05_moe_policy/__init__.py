"""pi05_moe_policy: the PI0.5 camera-MoE model, its ROS-free runtime core and its nodes.

``Policy`` is imported lazily so that the numpy-only core (``pi05_moe_policy.core``) and the
nodes' helpers never pay for importing torch.
"""

__all__ = ['Policy']


def __getattr__(name):
    if name == 'Policy':
        from pi05_moe_policy.policy import Policy

        return Policy
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
