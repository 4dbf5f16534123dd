"""Flushing the log in the kernel's background, started as soon as a commit
is written.

The flush then overlaps what the server still does for that commit on the
event loop (installing it, encoding the monitor updates and the reply)
instead of following it.  The reply still waits for the flush: the commit
barrier (durability.py) asks for it with Storage.sync() before anything goes
out.

The flush is a Linux AIO fdatasync (io_submit with IOCB_CMD_FDSYNC, which the
kernel runs on a worker of its own), not a Python thread: a thread would
need the GIL to start its fdatasync, and the event loop holds the GIL until
it next blocks, which is when the reply is ready, so nothing would overlap.
Where AIO is not available (another architecture, a sandbox that forbids it,
aio-max-nr used up) nothing starts early and Storage.sync() flushes inline.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import platform

log = logging.getLogger(__name__)

#: io_setup, io_destroy, io_getevents, io_submit
_SYSCALL_NUMBERS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB_CMD_FDSYNC = 3


class _Iocb(ctypes.Structure):
    """struct iocb (linux/aio_abi.h), little-endian layout."""

    _fields_ = [("aio_data", ctypes.c_uint64), ("aio_key", ctypes.c_uint32),
                ("aio_rw_flags", ctypes.c_int32), ("aio_lio_opcode", ctypes.c_uint16),
                ("aio_reqprio", ctypes.c_int16), ("aio_fildes", ctypes.c_uint32),
                ("aio_buf", ctypes.c_uint64), ("aio_nbytes", ctypes.c_uint64),
                ("aio_offset", ctypes.c_int64), ("aio_reserved2", ctypes.c_uint64),
                ("aio_flags", ctypes.c_uint32), ("aio_resfd", ctypes.c_uint32)]


class _IoEvent(ctypes.Structure):
    """struct io_event."""

    _fields_ = [("data", ctypes.c_uint64), ("obj", ctypes.c_uint64),
                ("res", ctypes.c_int64), ("res2", ctypes.c_int64)]


class _KernelAio:
    """One AIO context with room for one request."""

    def __init__(self) -> None:
        numbers = _SYSCALL_NUMBERS.get(platform.machine())
        if numbers is None or ctypes.sizeof(_Iocb) != 64 or ctypes.sizeof(_IoEvent) != 32:
            raise OSError(errno.ENOSYS, "no Linux AIO on this architecture")
        self._setup, self._destroy, self._getevents, self._submit = numbers
        libc = ctypes.CDLL(None, use_errno=True)
        self._syscall = libc.syscall
        self._syscall.restype = ctypes.c_long
        self._ctx = ctypes.c_ulong(0)
        if self._call(self._setup, ctypes.c_long(1), ctypes.byref(self._ctx)) < 0:
            raise _errno_error("io_setup")
        self._iocb = _Iocb()
        self._iocbs = (ctypes.POINTER(_Iocb) * 1)(ctypes.pointer(self._iocb))
        self._events = (_IoEvent * 1)()

    def _call(self, number: int, *args: object) -> int:
        return self._syscall(ctypes.c_long(number), *args)

    def submit_fdatasync(self, fd: int) -> None:
        ctypes.memset(ctypes.byref(self._iocb), 0, ctypes.sizeof(_Iocb))
        self._iocb.aio_lio_opcode = _IOCB_CMD_FDSYNC
        self._iocb.aio_fildes = fd
        if self._call(self._submit, self._ctx, ctypes.c_long(1), self._iocbs) != 1:
            raise _errno_error("io_submit")

    def wait(self) -> None:
        """Wait for the submitted request; OSError if the flush failed."""
        while True:
            n = self._call(self._getevents, self._ctx, ctypes.c_long(1), ctypes.c_long(1),
                           self._events, None)
            if n == 1:
                break
            if n < 0 and ctypes.get_errno() == errno.EINTR:
                continue
            raise _errno_error("io_getevents")
        res = self._events[0].res
        if res < 0:
            raise OSError(-res, f"log flush failed: {os.strerror(-res)}")

    def close(self) -> None:
        self._call(self._destroy, self._ctx)


def _errno_error(what: str) -> OSError:
    code = ctypes.get_errno()
    return OSError(code, f"{what}: {os.strerror(code)}")


class BackgroundSync:
    """At most one background fdatasync in flight, and what it covers.

    Records are counted as they are appended; a flush started after record n
    was written covers records up to n, whatever else is written while it
    runs."""

    def __init__(self, use_kernel_aio: bool = True) -> None:
        self._aio: _KernelAio | None = None
        self._tried = not use_kernel_aio
        self._in_flight = False
        self._covers = 0
        self.completed = 0  # background flushes that finished well (for tests)

    def start(self, fd: int, covers: int) -> None:
        """Begin flushing fd in the background, unless a flush is running
        already (a later sync() tops it up) or AIO is not available."""
        if self._in_flight:
            return
        aio = self._kernel_aio()
        if aio is None:
            return
        try:
            aio.submit_fdatasync(fd)
        except OSError as e:  # the inline flush in sync() will do, and say why if it fails
            log.debug("background log flush not started: %s", e)
            return
        self._in_flight = True
        self._covers = covers

    def wait(self) -> int:
        """Wait for the flush in flight, if any; how many records it made
        durable (0 if none was running).  A failed flush raises OSError."""
        if not self._in_flight:
            return 0
        self._in_flight = False
        assert self._aio is not None
        self._aio.wait()
        self.completed += 1
        return self._covers

    def close(self) -> None:
        """Wait for any flush in flight (its outcome no longer matters) and
        release the AIO context."""
        try:
            self.wait()
        except OSError:
            pass
        if self._aio is not None:
            self._aio.close()
            self._aio = None

    def _kernel_aio(self) -> _KernelAio | None:
        if self._aio is None and not self._tried:
            self._tried = True
            try:
                self._aio = _KernelAio()
            except OSError as e:
                log.info("no background log flush (%s); flushing inline", e)
        return self._aio
