"""core.worker: the policy node's inference thread, without ROS."""

import threading
import time

import pytest

from pi05_moe_policy.core.worker import AbortedError, Worker


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


def test_abort_modules_ends_a_running_model_call_at_its_next_layer():
    import torch

    layers = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(3)])
    calls: list[int] = []
    started, result = threading.Event(), {}

    def step():
        started.set()
        x = torch.zeros(1, 4)  # (B, D)
        try:
            while True:  # an inference that would never end by itself
                x = layers(x)
                calls.append(1)
        except AbortedError as exc:
            result['aborted'] = str(exc)
            raise

    worker = Worker(step, 0.0, lambda exc: True, name='model_worker')
    worker.abort_modules(layers)
    worker.start()
    worker.wake()
    assert started.wait(5.0)
    deadline = time.monotonic() + 5.0
    while not calls and time.monotonic() < deadline:  # the model runs unhindered until stop
        time.sleep(0.01)
    t0 = time.monotonic()
    worker.stop(timeout=2.0)
    assert time.monotonic() - t0 < 1.0 and not worker._thread.is_alive()
    assert 'model_worker is stopping' in result['aborted']
    layers(torch.zeros(1, 4))  # the hooks are gone once stopped


def test_a_step_that_outlasts_stops_timeout_still_aborts_at_its_next_layer():
    """stop() gave up waiting while one long layer ran: the hooks must stay, so the step ends at
    the next layer instead of running on to the end of the inference (seen: a policy_node that
    took > 10 s to exit on a loaded machine)."""
    import torch

    entered, release = threading.Event(), threading.Event()

    class Slow(torch.nn.Module):
        def forward(self, x):
            entered.set()
            release.wait(5.0)  # one layer that takes longer than stop()'s timeout
            return x

    layers = torch.nn.Sequential(Slow(), torch.nn.Linear(4, 4))
    started, result = threading.Event(), {}

    def step():
        started.set()
        try:
            layers(torch.zeros(1, 4))  # (B, D)
            result['finished'] = True
        except AbortedError:
            result['aborted'] = True
            raise

    worker = Worker(step, 0.0, lambda exc: True, name='slow_worker')
    worker.abort_modules(layers)
    worker.start()
    worker.wake()
    assert started.wait(5.0) and entered.wait(5.0)
    worker.stop(timeout=0.1)  # returns while the slow layer still runs
    assert worker._thread.is_alive()
    release.set()
    worker._thread.join(5.0)
    assert result == {'aborted': True}
