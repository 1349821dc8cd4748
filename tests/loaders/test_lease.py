"""The loader lease on its own: taken, waited for, timed out, taken over."""

import dataclasses
import logging
import threading
import time

import pytest

from loaders.lease import Holding, Lease, LeaseError


def lease(store, settings, owner, **changed) -> Lease:
    return Lease(store, dataclasses.replace(settings, **changed), owner=owner)


def test_acquire_renew_release_and_generation(store, settings):
    a = lease(store, settings, "a")
    assert a.acquire() == Holding(0, 0) and a.held
    assert a.acquire() == Holding(0, 0)  # the owner takes it again
    assert a.renew(bump=True).generation == 1
    a.release(facets=1)
    assert not a.held
    b = lease(store, settings, "b")
    assert b.acquire() == Holding(1, 1)  # free once released; what a wrote is seen


def test_held_by_another_waits_then_says_who(store, settings, caplog):
    a = lease(store, settings, "host:1/a")
    a.acquire()
    b = lease(store, settings, "host:2/b", loader_wait_s=1)
    started = time.monotonic()
    gave_up = r"gave up after 1 s .* held by host:1/a since "
    with (
        caplog.at_level(logging.WARNING, "newsgraph.loaders"),
        pytest.raises(LeaseError, match=gave_up),
    ):
        b.acquire()
    assert 1 <= time.monotonic() - started < 5
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waits) == 1 and "held by host:1/a since" in waits[0]
    assert not b.held


def test_released_lease_is_taken_by_a_waiting_loader(store, settings):
    a = lease(store, settings, "a")
    a.acquire()
    b = lease(store, settings, "b", loader_wait_s=10)
    threading.Timer(0.5, a.release).start()
    started = time.monotonic()
    b.acquire()
    assert b.held and time.monotonic() - started < 5


def test_an_expired_lease_is_taken_over_and_its_owner_told(store, settings):
    crashed = lease(store, settings, "crashed", loader_lease_s=1)
    crashed.acquire()
    crashed.renew(bump=True)  # wrote, then died before rebuilding the facets
    late = lease(store, settings, "late", loader_wait_s=10)
    started = time.monotonic()
    assert late.acquire() == Holding(1, 0)  # facets behind: the next loader repairs them
    assert time.monotonic() - started < 5
    with pytest.raises(LeaseError, match=r"ran out .* late .* took it over"):
        crashed.renew()
    assert not crashed.held
