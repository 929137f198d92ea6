"""The GL backend picker: keeps a chosen backend, probes otherwise, fails with a clear message."""

import os
import sys

import pytest

from pi05_moe_bringup.sim import backend


def test_a_chosen_backend_is_kept(monkeypatch):
    monkeypatch.setenv('MUJOCO_GL', 'egl')
    monkeypatch.setattr(backend, 'probe_backend', lambda name: pytest.fail('probed'))
    assert backend.ensure_gl_backend() == 'egl'


def test_probes_in_order_and_exports_the_first_that_works(monkeypatch):
    monkeypatch.delenv('MUJOCO_GL', raising=False)
    monkeypatch.delitem(sys.modules, 'mujoco', raising=False)
    tried = []

    def probe(name):
        tried.append(name)
        return None if name == 'osmesa' else 'no EGL device'

    monkeypatch.setattr(backend, 'probe_backend', probe)
    assert backend.ensure_gl_backend() == 'osmesa'
    assert tried == ['egl', 'osmesa']
    assert os.environ['MUJOCO_GL'] == 'osmesa'


def test_no_working_backend_names_every_failure(monkeypatch):
    monkeypatch.delenv('MUJOCO_GL', raising=False)
    monkeypatch.delitem(sys.modules, 'mujoco', raising=False)
    monkeypatch.setattr(backend, 'probe_backend', lambda name: f'{name} broke')
    with pytest.raises(backend.GLBackendError, match='egl: egl broke; osmesa: osmesa broke'):
        backend.ensure_gl_backend()


def test_probe_reports_an_invalid_backend():
    assert 'MUJOCO_GL' in backend.probe_backend('not-a-backend')
