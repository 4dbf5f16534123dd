"""A thin ctypes binding over libbpf.so.1 (libbpf 1.1): objects, maps, TC, ring buffers.

Only what the bpf datapath provider needs.  Every call that fails raises
``LibbpfError`` carrying the positive errno, so callers can map it onto a
``DpifError`` without guessing.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import os
from collections.abc import Callable, Iterator

_lib = ctypes.CDLL("libbpf.so.1", use_errno=True)

BPF_ANY, BPF_NOEXIST, BPF_EXIST = 0, 1, 2
BPF_F_LOCK = 4  # take the value's bpf_spin_lock while copying it in or out
BPF_TC_INGRESS, BPF_TC_EGRESS = 1, 2
BPF_TC_F_REPLACE = 1
BTF_KIND_STRUCT = 4


class LibbpfError(OSError):
    """A libbpf call failed with ``errno``."""


def _check(ret: int, what: str) -> int:
    """libbpf 1.x returns -errno on failure (and sets errno too)."""
    if ret < 0:
        err = -ret if ret != -1 else (ctypes.get_errno() or errno_mod.EIO)
        raise LibbpfError(err, f"{what}: {os.strerror(err)}")
    return ret


def _check_ptr(ptr: int | None, what: str) -> int:
    if not ptr:
        err = ctypes.get_errno() or errno_mod.EIO
        raise LibbpfError(err, f"{what}: {os.strerror(err)}")
    return ptr


def _fn(name: str, restype: object, *argtypes: object) -> Callable[..., object]:
    func = getattr(_lib, name)
    func.restype = restype
    func.argtypes = list(argtypes)
    return func


_vp, _cp, _int = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
_u32, _sz = ctypes.c_uint32, ctypes.c_size_t

_open_file = _fn("bpf_object__open_file", _vp, _cp, _vp)
_obj_load = _fn("bpf_object__load", _int, _vp)
_obj_close = _fn("bpf_object__close", None, _vp)
_obj_btf = _fn("bpf_object__btf", _vp, _vp)
_next_map = _fn("bpf_object__next_map", _vp, _vp, _vp)
_find_map = _fn("bpf_object__find_map_by_name", _vp, _vp, _cp)
_find_prog = _fn("bpf_object__find_program_by_name", _vp, _vp, _cp)
_prog_fd = _fn("bpf_program__fd", _int, _vp)
_map_fd = _fn("bpf_map__fd", _int, _vp)
_map_name = _fn("bpf_map__name", _cp, _vp)
_map_type = _fn("bpf_map__type", _int, _vp)
_map_key_size = _fn("bpf_map__key_size", _u32, _vp)
_map_value_size = _fn("bpf_map__value_size", _u32, _vp)
_map_max_entries = _fn("bpf_map__max_entries", _u32, _vp)
_map_flags = _fn("bpf_map__map_flags", _u32, _vp)
_map_set_pin_path = _fn("bpf_map__set_pin_path", _int, _vp, _cp)
_map_unpin = _fn("bpf_map__unpin", _int, _vp, _cp)
_update_elem = _fn("bpf_map_update_elem", _int, _int, _vp, _vp, ctypes.c_uint64)
_lookup_elem = _fn("bpf_map_lookup_elem", _int, _int, _vp, _vp)
_lookup_elem_flags = _fn("bpf_map_lookup_elem_flags", _int, _int, _vp, _vp, ctypes.c_uint64)
_delete_elem = _fn("bpf_map_delete_elem", _int, _int, _vp)
_get_next_key = _fn("bpf_map_get_next_key", _int, _int, _vp, _vp)


class _BatchOpts(ctypes.Structure):
    """struct bpf_map_batch_opts (libbpf 1.1)."""

    _fields_ = [("sz", _sz), ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


_lookup_batch = _fn("bpf_map_lookup_batch", _int, _int, _vp, _vp, _vp, _vp, _vp, _vp)
_update_batch = _fn("bpf_map_update_batch", _int, _int, _vp, _vp, _vp, _vp)
_num_possible_cpus = _fn("libbpf_num_possible_cpus", _int)
_tc_hook_create = _fn("bpf_tc_hook_create", _int, _vp)
_tc_hook_destroy = _fn("bpf_tc_hook_destroy", _int, _vp)
_tc_attach = _fn("bpf_tc_attach", _int, _vp, _vp)
_tc_detach = _fn("bpf_tc_detach", _int, _vp, _vp)
_tc_query = _fn("bpf_tc_query", _int, _vp, _vp)

RING_BUFFER_SAMPLE_FN = ctypes.CFUNCTYPE(_int, _vp, _vp, _sz)
_rb_new = _fn("ring_buffer__new", _vp, _int, RING_BUFFER_SAMPLE_FN, _vp, _vp)
_rb_free = _fn("ring_buffer__free", None, _vp)
_rb_consume = _fn("ring_buffer__consume", _int, _vp)
_rb_epoll_fd = _fn("ring_buffer__epoll_fd", _int, _vp)

_btf_find_by_name_kind = _fn("btf__find_by_name_kind", ctypes.c_int32, _vp, _cp, _u32)
_btf_type_by_id = _fn("btf__type_by_id", _vp, _vp, _u32)
_btf_name_by_offset = _fn("btf__name_by_offset", _cp, _vp, _u32)
_btf_resolve_size = _fn("btf__resolve_size", ctypes.c_int64, _vp, _u32)


def num_possible_cpus() -> int:
    return _check(_num_possible_cpus(), "libbpf_num_possible_cpus")


# ---------------------------------------------------------------- maps


class BpfMap:
    """A map of a loaded object, read and written through its fd with raw bytes."""

    def __init__(self, handle: int) -> None:
        self._handle = handle
        self.name: str = _map_name(handle).decode()
        self.type: int = _map_type(handle)
        self.key_size: int = _map_key_size(handle)
        self.value_size: int = _map_value_size(handle)
        self.max_entries: int = _map_max_entries(handle)
        self.map_flags: int = _map_flags(handle)
        self._fd = -1
        self._closed = False

    @property
    def fd(self) -> int:
        """The map's fd (remembered once the object is loaded: every map
        operation needs it, and asking libbpf is a foreign call)."""
        if self._fd < 0:
            if self._closed:
                raise LibbpfError(errno_mod.EBADF, f"map {self.name}: object closed")
            fd = _map_fd(self._handle)
            if fd < 0:
                return fd
            self._fd = fd
        return self._fd

    def forget(self) -> None:
        """The object was closed: the handle and fd are no longer ours."""
        self._fd = -1
        self._closed = True

    @property
    def is_percpu(self) -> bool:
        # BPF_MAP_TYPE_PERCPU_HASH = 5, PERCPU_ARRAY = 6, LRU_PERCPU_HASH = 10
        return self.type in (5, 6, 10)

    def _value_buffer(self) -> ctypes.Array[ctypes.c_char]:
        if self.is_percpu:
            stride = (self.value_size + 7) // 8 * 8
            return ctypes.create_string_buffer(stride * num_possible_cpus())
        return ctypes.create_string_buffer(self.value_size)

    def set_pin_path(self, path: str) -> None:
        _check(_map_set_pin_path(self._handle, path.encode()), f"pin {self.name}")

    def unpin(self, path: str) -> None:
        _check(_map_unpin(self._handle, path.encode()), f"unpin {self.name}")

    def lookup(self, key: bytes, flags: int = 0) -> bytes | None:
        """The value (for per-CPU maps: every CPU's value, each padded to 8 bytes)."""
        value = self._value_buffer()
        if flags:
            ret = _lookup_elem_flags(self.fd, key, value, flags)
        else:
            ret = _lookup_elem(self.fd, key, value)
        if ret == -errno_mod.ENOENT:
            return None
        _check(ret, f"lookup in {self.name}")
        return value.raw

    def percpu_values(self, key: bytes) -> list[bytes]:
        raw = self.lookup(key)
        if raw is None:
            return []
        stride = (self.value_size + 7) // 8 * 8
        return [raw[i:i + self.value_size] for i in range(0, len(raw), stride)]

    def update(self, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
        if self.is_percpu and len(value) == self.value_size:
            stride = (self.value_size + 7) // 8 * 8
            value = value.ljust(stride, b"\0") * num_possible_cpus()
        _check(_update_elem(self.fd, key, value, flags), f"update {self.name}")

    def update_batch(self, keys: bytes, values: bytes, count: int) -> tuple[int, int]:
        """Create or replace ``count`` entries (keys and values each laid end
        to end) in one system call, in order, stopping at the first failure.

        Returns (how many were written, the errno of the one that failed or
        0).  The kernel takes no BPF_NOEXIST/BPF_EXIST here: an entry that
        exists is replaced.  Not for per-CPU maps."""
        if count <= 0:
            return 0, 0
        done = _u32(count)
        opts = _BatchOpts(ctypes.sizeof(_BatchOpts), 0, 0)
        ret = _update_batch(self.fd, keys, values, ctypes.byref(done), ctypes.byref(opts))
        if ret >= 0:
            return count, 0
        err = -ret if ret != -1 else (ctypes.get_errno() or errno_mod.EIO)
        written = done.value if done.value < count else 0  # untouched count: nothing written
        return written, err

    def items_batch(self, chunk: int = 1024) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) in chunks of ``chunk`` per system call.

        A hash map is walked bucket by bucket: an entry added or deleted
        meanwhile may be missed or seen, as with ``keys``; no key repeats.
        Not for per-CPU maps."""
        ks, vs = self.key_size, self.value_size
        keys = ctypes.create_string_buffer(ks * chunk)
        values = ctypes.create_string_buffer(vs * chunk)
        in_batch = ctypes.create_string_buffer(max(ks, 8))
        out_batch = ctypes.create_string_buffer(max(ks, 8))
        opts = _BatchOpts(ctypes.sizeof(_BatchOpts), 0, 0)
        first = True
        while True:
            count = _u32(chunk)
            ret = _lookup_batch(self.fd, None if first else in_batch, out_batch, keys, values,
                                ctypes.byref(count), ctypes.byref(opts))
            err = 0 if ret >= 0 else (-ret if ret != -1 else ctypes.get_errno())
            if err not in (0, errno_mod.ENOENT):
                raise LibbpfError(err, f"lookup batch in {self.name}: {os.strerror(err)}")
            raw_keys, raw_values = keys.raw, values.raw
            for i in range(count.value):
                yield raw_keys[i * ks:(i + 1) * ks], raw_values[i * vs:(i + 1) * vs]
            if err == errno_mod.ENOENT:
                return
            ctypes.memmove(in_batch, out_batch, len(out_batch))
            first = False

    def delete(self, key: bytes) -> bool:
        """Remove ``key``; False if it was not there."""
        ret = _delete_elem(self.fd, key)
        if ret == -errno_mod.ENOENT:
            return False
        _check(ret, f"delete from {self.name}")
        return True

    def keys(self) -> Iterator[bytes]:
        """Every key once.  Entries may come or go meanwhile; when the key we
        stand on is deleted the kernel restarts the walk, so repeats are skipped."""
        current: bytes | None = None
        seen: set[bytes] = set()
        nxt = ctypes.create_string_buffer(self.key_size)
        while True:
            ret = _get_next_key(self.fd, current, nxt)
            if ret == -errno_mod.ENOENT:
                return
            _check(ret, f"walk {self.name}")
            current = nxt.raw
            if current not in seen:
                seen.add(current)
                yield current


# ---------------------------------------------------------------- objects


class BpfObject:
    """An ELF object opened (and later loaded) through libbpf."""

    def __init__(self, path: str) -> None:
        ctypes.set_errno(0)
        self._handle: int | None = _check_ptr(_open_file(path.encode(), None), f"open {path}")

    @property
    def handle(self) -> int:
        if self._handle is None:
            raise LibbpfError(errno_mod.EBADF, "BPF object is closed")
        return self._handle

    def maps(self) -> list[BpfMap]:
        found, prev = [], None
        while True:
            prev = _next_map(self.handle, prev)
            if not prev:
                return found
            found.append(BpfMap(prev))

    def map(self, name: str) -> BpfMap:
        ctypes.set_errno(0)
        return BpfMap(_check_ptr(_find_map(self.handle, name.encode()), f"map {name}"))

    def load(self) -> None:
        _check(_obj_load(self.handle), "bpf_object__load")

    def program_fd(self, name: str) -> int:
        ctypes.set_errno(0)
        prog = _check_ptr(_find_prog(self.handle, name.encode()), f"program {name}")
        return _check(_prog_fd(prog), f"fd of program {name}")

    def btf(self) -> Btf:
        ctypes.set_errno(0)
        return Btf(_check_ptr(_obj_btf(self.handle), "object has no BTF"))

    def close(self) -> None:
        if self._handle is not None:
            _obj_close(self._handle)
            self._handle = None


class Btf:
    """Read-only view of an object's BTF: enough to check struct layouts."""

    def __init__(self, handle: int) -> None:
        self._handle = handle

    def struct_layout(self, name: str) -> tuple[int, dict[str, tuple[int, int]]]:
        """(sizeof, {member: (byte offset, byte size)}) of ``struct name``."""
        type_id = _check(_btf_find_by_name_kind(self._handle, name.encode(), BTF_KIND_STRUCT),
                         f"BTF struct {name}")
        ptr = _check_ptr(_btf_type_by_id(self._handle, type_id), f"BTF type {type_id}")
        name_off, info, size = (ctypes.c_uint32 * 3).from_address(ptr)
        vlen, kflag = info & 0xFFFF, info >> 31
        members = (ctypes.c_uint32 * (3 * vlen)).from_address(ptr + 12)
        layout = {}
        for i in range(vlen):
            m_name, m_type, m_offset = members[3 * i:3 * i + 3]
            bit_offset = m_offset & 0xFFFFFF if kflag else m_offset
            member_name = _btf_name_by_offset(self._handle, m_name).decode()
            layout[member_name] = (bit_offset // 8, _btf_resolve_size(self._handle, m_type))
        return size, layout


# ---------------------------------------------------------------- TC


class _TcHook(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("ifindex", ctypes.c_int),
                ("attach_point", ctypes.c_int), ("parent", ctypes.c_uint32),
                ("_pad", ctypes.c_uint32)]


class _TcOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("prog_fd", ctypes.c_int), ("flags", ctypes.c_uint32),
                ("prog_id", ctypes.c_uint32), ("handle", ctypes.c_uint32),
                ("priority", ctypes.c_uint32), ("_pad", ctypes.c_uint32)]


def _hook(ifindex: int, attach_point: int = BPF_TC_INGRESS) -> _TcHook:
    return _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=attach_point)


def _opts(handle: int, priority: int, prog_fd: int = 0, flags: int = 0) -> _TcOpts:
    return _TcOpts(sz=ctypes.sizeof(_TcOpts), prog_fd=prog_fd, flags=flags,
                   handle=handle, priority=priority)


def tc_ensure_clsact(ifindex: int) -> bool:
    """Create the clsact qdisc on ``ifindex``; True if we created it, False if it existed."""
    ret = _tc_hook_create(ctypes.byref(_hook(ifindex)))
    if ret == -errno_mod.EEXIST:
        return False
    _check(ret, f"create clsact on ifindex {ifindex}")
    return True


def tc_destroy_clsact(ifindex: int) -> None:
    """Remove the clsact qdisc (and with it every filter on it) from ``ifindex``."""
    _check(_tc_hook_destroy(ctypes.byref(_hook(ifindex, BPF_TC_INGRESS | BPF_TC_EGRESS))),
           f"destroy clsact on ifindex {ifindex}")


def tc_attach_ingress(ifindex: int, prog_fd: int, handle: int, priority: int) -> None:
    """Attach (or replace) our filter ``handle``/``priority`` on ``ifindex``'s ingress."""
    opts = _opts(handle, priority, prog_fd, BPF_TC_F_REPLACE)
    _check(_tc_attach(ctypes.byref(_hook(ifindex)), ctypes.byref(opts)),
           f"attach to ifindex {ifindex}")


def tc_detach_ingress(ifindex: int, handle: int, priority: int) -> bool:
    """Detach exactly our filter; False if it (or the device) was already gone."""
    ret = _tc_detach(ctypes.byref(_hook(ifindex)), ctypes.byref(_opts(handle, priority)))
    if ret in (-errno_mod.ENOENT, -errno_mod.ENODEV, -errno_mod.EINVAL):
        return False
    _check(ret, f"detach from ifindex {ifindex}")
    return True


def tc_query_ingress(ifindex: int, handle: int, priority: int) -> int | None:
    """The program id of filter ``handle``/``priority`` on ingress, None if absent."""
    opts = _opts(handle, priority)
    ret = _tc_query(ctypes.byref(_hook(ifindex)), ctypes.byref(opts))
    if ret in (-errno_mod.ENOENT, -errno_mod.ENODEV, -errno_mod.EINVAL):
        return None
    _check(ret, f"query ifindex {ifindex}")
    return opts.prog_id


# ---------------------------------------------------------------- ring buffer


class RingBuffer:
    """A consumer of a BPF ring buffer map that never blocks.

    ``consume(limit)`` hands at most ``limit`` records (as bytes) to the
    caller; the rest stay queued in the ring for the next call.
    """

    def __init__(self, map_fd: int) -> None:
        self._batch: list[bytes] = []
        self._limit = 0
        self._callback = RING_BUFFER_SAMPLE_FN(self._on_sample)
        ctypes.set_errno(0)
        self._handle: int | None = _check_ptr(_rb_new(map_fd, self._callback, None, None),
                                              "ring_buffer__new")

    def _on_sample(self, _ctx: int | None, data: int, size: int) -> int:
        self._batch.append(ctypes.string_at(data, size))
        # A negative return stops libbpf after this record (already consumed).
        return -1 if len(self._batch) >= self._limit else 0

    def epoll_fd(self) -> int:
        if self._handle is None:
            raise LibbpfError(errno_mod.EBADF, "ring buffer is closed")
        return _rb_epoll_fd(self._handle)

    def consume(self, limit: int) -> list[bytes]:
        if self._handle is None or limit <= 0:
            return []
        self._batch, self._limit = [], limit
        _rb_consume(self._handle)
        batch, self._batch = self._batch, []
        return batch

    def close(self) -> None:
        if self._handle is not None:
            _rb_free(self._handle)
            self._handle = None
