"""core.worker: the policy node's inference thread, without ROS."""

import threading
import time

import pytest

from pi05_moe_policy.core.worker import Worker


def test_worker_runs_when_woken_survives_errors_and_stops():
    ran, errors = [], []
    done = threading.Event()

    def step():
        ran.append(time.monotonic())
        if len(ran) == 1:
            raise RuntimeError('one bad inference')
        done.set()

    worker = Worker(step, 0.0, lambda exc: errors.append(exc) or True, idle_s=5.0)
    worker.start()
    worker.wake()
    time.sleep(0.2)
    worker.wake()
    assert done.wait(2.0), 'the worker did not run on after an error'
    assert [str(e) for e in errors] == ['one bad inference']
    worker.stop(timeout=2.0)
    assert worker.stopping.is_set() and not worker._thread.is_alive()


def test_on_error_false_ends_the_loop_and_bad_intervals_are_refused():
    worker = Worker(lambda: 1 / 0, 0.0, lambda exc: False, idle_s=0.01)
    worker.start()
    worker._thread.join(timeout=2.0)
    assert not worker._thread.is_alive()
    with pytest.raises(ValueError, match='min_interval_s=-1'):
        Worker(print, -1, bool)
