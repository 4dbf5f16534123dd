"""Find, load and pin the datapath object.

Maps are pinned under ``<pin_root>/<layout version>/``; the version is a hash
of every map's definition, so an object whose maps changed never picks up
pins of an older layout (libbpf would refuse them anyway).  Loading an
object whose pins already exist reuses those maps, which is how a restarted
daemon finds its ports and flows again.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ovsbpfd.dpif.bpf.libbpf import BpfMap, BpfObject, LibbpfError
from ovsbpfd.dpif.bpf.structs import LAYOUT_REVISION
from ovsbpfd.dpif.types import FLOW_KEY_SIZE

OBJECT_NAME = "datapath.bpf.o"
PROGRAM_NAME = "ovsbpf_ingress"
BPFFS = "/sys/fs/bpf"
_PACKAGE_DIR = Path(__file__).resolve().parent
_SOURCE_DIR = _PACKAGE_DIR.parents[2] / "bpf"


def object_path() -> str:
    """The compiled object; in a source checkout, (re)build it when stale."""
    obj = _PACKAGE_DIR / OBJECT_NAME
    sources = list(_SOURCE_DIR.glob("*.[ch]")) if _SOURCE_DIR.is_dir() else []
    stale = not obj.exists() or any(s.stat().st_mtime > obj.stat().st_mtime for s in sources)
    if sources and stale and shutil.which("make") and shutil.which("clang"):
        # Build aside and rename, so a concurrent loader never reads half a file.
        with tempfile.TemporaryDirectory(dir=_PACKAGE_DIR, prefix=".build-") as tmp:
            subprocess.run(["make", "-s", "-C", str(_SOURCE_DIR), f"OUT={tmp}"],
                           check=True, capture_output=True)
            os.replace(os.path.join(tmp, OBJECT_NAME), obj)
    if not obj.exists():
        raise FileNotFoundError(f"{obj} is missing: build the package (make -C bpf)")
    return str(obj)


def _is_bpffs(path: str) -> bool:
    with open("/proc/self/mounts") as mounts:
        return any(line.split()[1] == path and line.split()[2] == "bpf" for line in mounts)


def ensure_bpffs() -> None:
    """Mount bpffs on /sys/fs/bpf if nothing is mounted there yet."""
    if _is_bpffs(BPFFS):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"bpf", BPFFS.encode(), b"bpf", 0, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount bpffs on {BPFFS}: {os.strerror(err)}")


def layout_version(maps: list[BpfMap]) -> str:
    """A short name for the map layout, used as the pin sub-directory."""
    digest = hashlib.sha256(f"{FLOW_KEY_SIZE}:{LAYOUT_REVISION}".encode())
    for m in sorted(maps, key=lambda m: m.name):
        digest.update(f"{m.name}:{m.type}:{m.key_size}:{m.value_size}:{m.max_entries}:"
                      f"{m.map_flags};".encode())
    return "v1-" + digest.hexdigest()[:12]


@dataclass
class LoadedDatapath:
    obj: BpfObject
    maps: dict[str, BpfMap]
    prog_fd: int
    pin_dir: str
    reused_pins: bool  # True when the maps already existed (a restart)

    def close(self) -> None:
        self.obj.close()


def load_datapath(pin_root: str) -> LoadedDatapath:
    """Open the object, pin (or re-use) its maps under a versioned dir, load it."""
    ensure_bpffs()
    obj = BpfObject(object_path())
    try:
        maps = {m.name: m for m in obj.maps() if not m.name.startswith(".")}
        pin_dir = os.path.join(pin_root, layout_version(list(maps.values())))
        os.makedirs(pin_dir, exist_ok=True)
        reused = all(os.path.exists(os.path.join(pin_dir, name)) for name in maps)
        for name, m in maps.items():
            m.set_pin_path(os.path.join(pin_dir, name))
        obj.load()
        return LoadedDatapath(obj, maps, obj.program_fd(PROGRAM_NAME), pin_dir, reused)
    except (LibbpfError, OSError):
        obj.close()
        raise


def remove_pins(loaded: LoadedDatapath, pin_root: str) -> None:
    """Unlink every pinned map, then the version dir and pin_root if empty."""
    for name in loaded.maps:
        try:
            os.unlink(os.path.join(loaded.pin_dir, name))
        except FileNotFoundError:
            pass
    for directory in (loaded.pin_dir, pin_root):
        try:
            os.rmdir(directory)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.ENOENT):
                raise
