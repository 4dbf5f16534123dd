"""The asyncio adapter for python-ovs run()/wait(poller) objects."""

from __future__ import annotations

import asyncio
import socket
import time

import ovs.poller

from ovsbpfd.vswitch.ovs_async import OvsLoopDriver, collect_wait


class SocketReader:
    """A python-ovs style object: wait() asks for a fd and/or a timer."""

    def __init__(self, sock: socket.socket, timer_ms: int = -1) -> None:
        self.sock = sock
        self.timer_ms = timer_ms
        self.received = b""
        self.runs = 0

    def run(self) -> None:
        self.runs += 1
        try:
            self.received += self.sock.recv(100)
        except BlockingIOError:
            pass

    def wait(self, poller: ovs.poller.Poller) -> None:
        poller.fd_wait(self.sock.fileno(), ovs.poller.POLLIN)
        if self.timer_ms >= 0:
            poller.timer_wait(self.timer_ms)


def test_collect_wait_reads_fds_and_timeout() -> None:
    a, b = socket.socketpair()
    try:
        def wait(poller: ovs.poller.Poller) -> None:
            poller.fd_wait(a.fileno(), ovs.poller.POLLIN)
            poller.fd_wait(b.fileno(), ovs.poller.POLLOUT)
            poller.timer_wait(250)
            poller.timer_wait(900)

        ws = collect_wait(wait)
        assert ws.readers == {a.fileno()}
        assert ws.writers == {b.fileno()}
        assert ws.timeout_ms == 250
        assert collect_wait(lambda p: None).timeout_ms == -1
        assert collect_wait(lambda p: p.immediate_wake()).timeout_ms == 0
    finally:
        a.close()
        b.close()


def test_driver_runs_when_fd_readable_without_blocking_loop() -> None:
    async def scenario() -> None:
        a, b = socket.socketpair()
        a.setblocking(False)
        obj = SocketReader(a)
        driver = OvsLoopDriver(obj.run, obj.wait)
        try:
            driver.start()
            await asyncio.sleep(0.05)
            idle_runs = obj.runs
            assert idle_runs >= 1
            # Nothing to read: the driver must not spin.
            await asyncio.sleep(0.2)
            assert obj.runs == idle_runs
            b.send(b"hello")
            for _ in range(100):
                if obj.received:
                    break
                await asyncio.sleep(0.01)
            assert obj.received == b"hello"
        finally:
            driver.stop()
            a.close()
            b.close()

    asyncio.run(scenario())


def test_driver_honours_timer_and_kick() -> None:
    async def scenario() -> None:
        a, b = socket.socketpair()
        a.setblocking(False)
        obj = SocketReader(a, timer_ms=100)
        driver = OvsLoopDriver(obj.run, obj.wait)
        try:
            start = time.monotonic()
            driver.start()
            await asyncio.sleep(0.35)
            # one run at start, then about one per 100 ms timer
            assert 3 <= obj.runs <= 6, obj.runs
            obj.timer_ms = -1
            await asyncio.sleep(0.15)
            before = obj.runs
            driver.kick()
            await asyncio.sleep(0.01)
            assert obj.runs == before + 1
            assert time.monotonic() - start < 2
        finally:
            driver.stop()
            a.close()
            b.close()

    asyncio.run(scenario())


def test_driver_survives_a_failing_step() -> None:
    async def scenario() -> None:
        calls = []

        def step() -> None:
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("first run fails")

        driver = OvsLoopDriver(step, lambda p: None)
        driver.start()
        await asyncio.sleep(0.01)
        assert len(calls) == 1
        driver.kick()
        await asyncio.sleep(0.01)
        assert len(calls) == 2
        driver.stop()
        driver.kick()
        await asyncio.sleep(0.01)
        assert len(calls) == 2  # stopped drivers do not run

    asyncio.run(scenario())
