"""Private ROS_DOMAIN_IDs for tests.

Fast DDS maps domain d to UDP ports 7400 + 250 d + ...; above domain 101 those ports fall into
Linux's ephemeral range (32768-60999), where any other socket on the machine may hold them
(ROS 2's documentation calls 0-101 the safe range on Linux). Domain 0 is everyone's default,
so tests draw from 1-101.
"""

from __future__ import annotations

import os
import random

SAFE = range(1, 102)


def private_domain_id(exclude: tuple[int, ...] = ()) -> int:
    """A random domain in 1..101, not the one this process runs on, nor any in ``exclude``."""
    taken = set(exclude)
    if os.environ.get('ROS_DOMAIN_ID', '').isdecimal():
        taken.add(int(os.environ['ROS_DOMAIN_ID']))
    return random.SystemRandom().choice([d for d in SAFE if d not in taken])
