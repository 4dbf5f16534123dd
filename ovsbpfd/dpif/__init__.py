"""dpif: the datapath interface (OVS's ``dpif``) and its providers."""

from __future__ import annotations

from typing import Any

from ovsbpfd.dpif.provider import Dpif, DpifError

__all__ = ["Dpif", "DpifError", "open_dpif"]


def open_dpif(kind: str, **kw: Any) -> Dpif:
    """Open a datapath of provider ``kind`` ("dummy" or "bpf").

    The bpf provider is imported only when asked for, so hosts without
    libbpf can still run the dummy one.
    """
    if kind == "dummy":
        from ovsbpfd.dpif.dummy import DummyDpif

        return DummyDpif(**kw)
    if kind == "bpf":
        from ovsbpfd.dpif.bpf.provider import BpfDpif

        return BpfDpif(**kw)
    raise ValueError(f"unknown datapath type {kind!r} (expected 'dummy' or 'bpf')")
