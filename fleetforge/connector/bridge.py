"""Run asyncio coroutines from gevent greenlets: one asyncio loop in one native OS thread.

pyinfra 3.x runs hosts as gevent greenlets after ``gevent.monkey.patch_all()``; asyncssh needs an
asyncio loop. Running that loop in the greenlet's own thread would block every other host, so the
loop runs in a **native** thread (``gevent.monkey.get_original``), and a greenlet waits for a
coroutine's result on a gevent ``async_`` watcher, which is the one gevent object that may be
signalled from another thread. Other greenlets keep running meanwhile.

Traps this module avoids:

- Under ``patch_all()`` the ``selectors``, ``threading`` and ``socket.getaddrinfo`` that asyncio
  would use are gevent's; gevent objects belong to one thread's hub. The loop gets a selector on
  the original ``select.poll``, and ``run_in_executor`` (asyncssh builds its options and resolves
  names there) runs jobs on original native threads instead of a ``ThreadPoolExecutor``, whose
  patched threads would be greenlets of a hub that never runs (a hang at exit in
  ``concurrent.futures``).
- asyncssh objects are touched only on the loop thread: callers pass coroutine *functions* that
  the loop thread calls, closing included.
- Logging: handler locks created after ``patch_all()`` are gevent locks, and a native thread
  that waits on one can deadlock (seen here with DEBUG logging on). Records of the ``asyncssh``
  and ``asyncio`` loggers are therefore queued by a handler with a native lock and handed to
  the starting thread's hub, which passes them to the root logger's handlers.
- At interpreter exit the loop is stopped and its thread joined (bounded wait), so a run never
  hangs after its last host.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import functools
import logging
import select
import selectors
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import gevent
import gevent.event
from gevent import monkey

T = TypeVar("T")

_start_new_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")
_getaddrinfo = monkey.get_original("socket", "getaddrinfo")
_getnameinfo = monkey.get_original("socket", "getnameinfo")

_native_rlock = monkey.get_original("_thread", "RLock")
LOOP_LOGGERS = ("asyncssh", "asyncio")  # loggers that emit on the loop thread

STOP_TIMEOUT_S = 5.0  # how long exit waits for the loop thread to finish closing connections


class _NativePollSelector(selectors._PollLikeSelector):  # type: ignore[name-defined,misc]
    """``selectors.PollSelector`` on the original (not gevent's) ``select.poll``."""

    _selector_cls = monkey.get_original("select", "poll")
    _EVENT_READ = select.POLLIN
    _EVENT_WRITE = select.POLLOUT


class _NativeThreadLoop(asyncio.SelectorEventLoop):
    """An event loop whose executor jobs and name lookups run on native threads."""

    def run_in_executor(self, executor: Any, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``func(*args)`` on a new native thread; ``executor`` must be ``None``."""
        if executor is not None:
            return super().run_in_executor(executor, func, *args)
        future: asyncio.Future[T] = self.create_future()

        def settle(ok: bool, value: Any) -> None:
            if future.cancelled():
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def work() -> None:
            try:
                result = (True, func(*args))
            except BaseException as e:  # delivered to the awaiting coroutine
                result = (False, e)
            try:
                self.call_soon_threadsafe(settle, *result)
            except RuntimeError:  # the loop closed meanwhile: nobody waits for this result
                pass

        _start_new_thread(work, ())
        return future

    async def getaddrinfo(self, host, port, *, family=0, type=0, proto=0, flags=0):  # noqa: A002
        return await self.run_in_executor(None, functools.partial(_getaddrinfo, host, port, family, type, proto, flags))

    async def getnameinfo(self, sockaddr, flags=0):
        return await self.run_in_executor(None, _getnameinfo, sockaddr, flags)


class _HubLogForwarder(logging.Handler):
    """Queues records logged on the loop thread; the hub of the thread that started the loop
    hands them to the root logger's handlers (as propagation would have)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: collections.deque[logging.LogRecord] = collections.deque()
        self.watcher = gevent.get_hub().loop.async_()
        self.watcher.ref = False  # never keeps the hub alive by itself
        self.watcher.start(self.drain)

    def createLock(self) -> None:  # noqa: N802 (logging's name)
        self.lock = _native_rlock()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.watcher.send()

    def drain(self) -> None:
        root = logging.getLogger()
        while self.records:
            root.handle(self.records.popleft())  # propagation ignores the ancestors' levels too


class LoopThread:
    """One asyncio event loop running in a native thread, started on first use.

    ``run(factory)`` is called from a greenlet (or any thread with a gevent hub): it schedules
    ``factory()`` on the loop thread and blocks only the calling greenlet until the coroutine
    finishes, returning its result or raising its exception.
    """

    def __init__(self) -> None:
        self._loop: _NativeThreadLoop | None = None
        self._start_lock = _allocate_lock()
        self._stopped = _allocate_lock()  # held while the loop thread runs

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop (started if needed)."""
        with self._start_lock:
            if self._loop is None or self._loop.is_closed():
                self._start()
        assert self._loop is not None
        return self._loop

    def _start(self) -> None:
        if _FORWARDER[0] is None:
            _FORWARDER[0] = _HubLogForwarder()
            for name in LOOP_LOGGERS:
                logger = logging.getLogger(name)
                logger.addHandler(_FORWARDER[0])
                logger.propagate = False
        ready = _allocate_lock()
        ready.acquire()
        loop = _NativeThreadLoop(_NativePollSelector())
        self._stopped.acquire()

        def main() -> None:
            asyncio.set_event_loop(loop)
            ready.release()
            try:
                loop.run_forever()
                loop.run_until_complete(_cancel_all(loop))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()
                self._stopped.release()

        _start_new_thread(main, ())
        ready.acquire()
        self._loop = loop

    def run(self, factory: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run ``factory()`` on the loop thread; wait for it in this greenlet only.

        Args:
            factory: a zero-argument callable returning an awaitable; it is called on the loop
                thread, so asyncssh objects are created and used there only.
            timeout: seconds before the coroutine is cancelled and ``TimeoutError`` raised;
                ``None`` waits as long as it runs.

        Returns:
            The coroutine's result.

        Raises:
            TimeoutError: ``timeout`` passed.
            BaseException: whatever the coroutine raised. If the waiting greenlet is killed
                (``gevent.Timeout``, ``KeyboardInterrupt``), the coroutine is cancelled and the
                exception propagates.
        """
        loop = self.loop
        hub = gevent.get_hub()
        watcher = hub.loop.async_()
        done = gevent.event.Event()
        watcher.start(done.set)
        box: dict[str, Any] = {}

        def finished(task: asyncio.Future) -> None:
            box["task"] = task
            if "abandoned" not in box:
                watcher.send()  # thread-safe wake-up of the waiting greenlet's hub

        def start() -> None:
            awaitable = factory()
            if timeout is not None:
                awaitable = asyncio.wait_for(awaitable, timeout)
            task = asyncio.ensure_future(awaitable)
            box["running"] = task
            task.add_done_callback(finished)

        try:
            loop.call_soon_threadsafe(start)
            done.wait()
        except BaseException:
            box["abandoned"] = True
            running = box.get("running")
            if running is not None:
                loop.call_soon_threadsafe(running.cancel)
            raise
        finally:
            watcher.stop()
            watcher.close()
        return box["task"].result()

    def stop(self) -> None:
        """Stop the loop (pending tasks are cancelled) and wait up to ``STOP_TIMEOUT_S`` for it."""
        with self._start_lock:
            loop = self._loop
            if loop is None or loop.is_closed():
                return
            loop.call_soon_threadsafe(loop.stop)
            if self._stopped.acquire(True, STOP_TIMEOUT_S):
                self._stopped.release()
            self._loop = None


async def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


_FORWARDER: list[_HubLogForwarder | None] = [None]

LOOP = LoopThread()
"""The process-wide loop every ``@asyncssh`` host shares."""

atexit.register(LOOP.stop)
