"""The gevent/asyncio bridge: one asyncio loop in a native thread, waited on by greenlets.

The pytest process is monkey-patched by gevent (tests/conftest.py), as pyinfra's CLI is.
"""

import asyncio

import gevent
import pytest
from gevent import monkey

from fleetforge.connector.bridge import LoopThread

_get_ident = monkey.get_original("_thread", "get_ident")


@pytest.fixture
def bridge():
    loop = LoopThread()
    yield loop
    loop.stop()


def test_the_process_is_patched_like_pyinfras_cli():
    assert monkey.is_module_patched("socket") and monkey.is_module_patched("threading")


def test_result_and_exception_come_back_to_the_greenlet(bridge):
    async def add(a, b):
        await asyncio.sleep(0)
        return a + b

    async def boom():
        raise KeyError("from the loop")

    assert bridge.run(lambda: add(2, 3)) == 5
    with pytest.raises(KeyError, match="from the loop"):
        bridge.run(boom)


def test_coroutines_run_on_one_native_thread_other_than_the_callers(bridge):
    async def where():
        return _get_ident(), asyncio.get_running_loop()

    first, loop1 = bridge.run(where)
    second, loop2 = bridge.run(where)
    assert first == second != _get_ident()
    assert loop1 is loop2


def test_waiting_greenlets_do_not_block_each_other(bridge):
    """Twenty greenlets each wait on a coroutine that waits for a shared event: if one wait
    blocked the hub, the greenlet that sets the event could never run."""
    release = asyncio.Event()
    started = []

    async def wait_for_release(i):
        started.append(i)
        await release.wait()
        return i

    waiters = [gevent.spawn(bridge.run, lambda i=i: wait_for_release(i)) for i in range(20)]
    gevent.sleep(0.2)
    assert sorted(started) == list(range(20))  # every coroutine is in flight at once
    assert not any(w.ready() for w in waiters)
    bridge.run(lambda: _set(release))
    assert sorted(gevent.joinall(waiters, timeout=10) and [w.get() for w in waiters]) == list(range(20))


async def _set(event):
    event.set()


async def _forever(state: dict) -> None:
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        state["cancelled"] = True
        raise


def test_timeout_cancels_the_coroutine(bridge):
    state = {}
    with pytest.raises(TimeoutError):
        bridge.run(lambda: _forever(state), timeout=0.2)
    assert state == {"cancelled": True}


def test_killing_the_waiting_greenlet_cancels_the_coroutine(bridge):
    state = {}
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.2):
            bridge.run(lambda: _forever(state))
    bridge.run(lambda: asyncio.sleep(0.05))  # let the cancellation run on the loop
    assert state == {"cancelled": True}


def test_executor_jobs_and_name_lookups_run_on_native_threads(bridge):
    """asyncssh builds its options with run_in_executor(None, ...): under gevent a
    ThreadPoolExecutor's threads would be greenlets of a hub that never runs (a hang)."""

    async def job():
        loop = asyncio.get_running_loop()
        worker = await loop.run_in_executor(None, _get_ident)
        addresses = await loop.getaddrinfo("127.0.0.1", 22)
        return worker, _get_ident(), addresses[0][4]

    worker, loop_thread, address = bridge.run(job)
    assert worker not in (loop_thread, _get_ident())
    assert address == ("127.0.0.1", 22)


def test_stop_is_idempotent_and_the_loop_restarts_on_next_use(bridge):
    bridge.run(lambda: asyncio.sleep(0))
    bridge.stop()
    bridge.stop()
    assert bridge.run(lambda: asyncio.sleep(0, result="again")) == "again"


def test_records_logged_on_the_loop_thread_reach_the_root_handlers_on_the_callers_thread(bridge):
    """asyncssh logs on the loop thread; its records are handed to the thread that started the
    loop (a gevent lock taken from the loop thread could deadlock)."""
    import logging

    seen = []

    class Capture(logging.Handler):
        def emit(self, record):
            seen.append((record.getMessage(), _get_ident()))

    handler = Capture(level=logging.INFO)
    root = logging.getLogger()
    root.addHandler(handler)
    logger = logging.getLogger("asyncssh")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:

        async def log():
            logging.getLogger("asyncssh").info("from the loop")
            return _get_ident()

        loop_thread = bridge.run(log)
        gevent.sleep(0.1)
    finally:
        root.removeHandler(handler)
        logger.setLevel(old_level)
    assert ("from the loop", _get_ident()) in seen
    assert loop_thread != _get_ident()
