"""The C structs of bpf/datapath.h and their Python mirrors agree (via BTF)."""

from __future__ import annotations

import ctypes
import os
import re
import struct
from collections.abc import Iterator

import pytest

from ovsbpfd.dpif.bpf import structs
from ovsbpfd.dpif.bpf.libbpf import BpfMap, BpfObject
from ovsbpfd.dpif.bpf.loader import layout_version, load_datapath, object_path, remove_pins
from ovsbpfd.dpif.types import _KEY_FORMAT, FLOW_KEY_SIZE, FLOW_KEY_STRUCT, MAX_ACTIONS


@pytest.fixture(scope="module")
def bpf_object() -> Iterator[BpfObject]:
    obj = BpfObject(object_path())
    yield obj
    obj.close()


def _mirror_layout(mirror: type[ctypes.Structure]) -> dict[str, tuple[int, int]]:
    return {name: (getattr(mirror, name).offset, getattr(mirror, name).size)
            for name, _ in mirror._fields_}


@pytest.mark.parametrize("c_name", sorted(structs.MIRRORS))
def test_dpif_bpf_mirror_matches_btf(bpf_object: BpfObject, c_name: str) -> None:
    size, layout = bpf_object.btf().struct_layout(c_name)
    mirror = structs.MIRRORS[c_name]
    assert ctypes.sizeof(mirror) == size
    assert _mirror_layout(mirror) == layout


def test_dpif_bpf_flow_key_matches_types_struct(bpf_object: BpfObject) -> None:
    """Member by member, the C key sits where FLOW_KEY_STRUCT packs each field."""
    size, layout = bpf_object.btf().struct_layout("ovsbpf_flow_key")
    assert size == FLOW_KEY_SIZE == FLOW_KEY_STRUCT.size == 72
    items = re.findall(r"\d*[a-zA-Z]", _KEY_FORMAT[1:])
    python_fields, off = [], 0
    for item in items:
        width = struct.calcsize("<" + item)
        python_fields.append((off, width))
        off += width
    assert list(layout.values()) == python_fields


def test_dpif_bpf_flow_action_array_has_max_actions(bpf_object: BpfObject) -> None:
    _, layout = bpf_object.btf().struct_layout("ovsbpf_flow")
    action_size, _ = bpf_object.btf().struct_layout("ovsbpf_action")
    assert layout["actions"][1] == MAX_ACTIONS * action_size


def test_dpif_bpf_maps_have_expected_shapes(bpf_object: BpfObject) -> None:
    maps = {m.name: m for m in bpf_object.maps()}
    assert maps["flows"].key_size == ctypes.sizeof(structs.FlowMapKey)
    assert maps["flows"].value_size == ctypes.sizeof(structs.Flow)
    assert maps["masks"].max_entries == structs.MAX_MASKS
    assert maps["ports"].max_entries == structs.MAX_PORTS
    assert maps["emc"].key_size == FLOW_KEY_SIZE


def test_dpif_bpf_layout_version_follows_map_definitions(bpf_object: BpfObject) -> None:
    maps = bpf_object.maps()
    base = layout_version(maps)
    assert base == layout_version(list(reversed(maps)))

    class Changed:
        def __init__(self, m: BpfMap) -> None:
            self.name, self.type, self.key_size = m.name, m.type, m.key_size
            self.value_size, self.max_entries = m.value_size + 8, m.max_entries
            self.map_flags = m.map_flags

    changed = [Changed(maps[0])] + maps[1:]
    assert layout_version(changed) != base  # type: ignore[arg-type]


def test_dpif_bpf_object_loads_and_pins_under_version() -> None:
    pin_root = f"/sys/fs/bpf/ovsbpfd-test-layout-{os.getpid()}"
    loaded = load_datapath(pin_root)
    try:
        assert loaded.prog_fd > 0
        assert not loaded.reused_pins
        assert os.path.dirname(loaded.pin_dir) == pin_root
        assert sorted(os.listdir(loaded.pin_dir)) == sorted(loaded.maps)
    finally:
        remove_pins(loaded, pin_root)
        loaded.close()
    assert not os.path.exists(pin_root)


def test_dpif_bpf_set_values_and_meters_match_python_limits(bpf_object: BpfObject) -> None:
    """The flow value's set-field array and the meter map agree with types/meter.py."""
    from ovsbpfd.dpif.meter import MAX_METER_BANDS, MAX_METERS
    from ovsbpfd.dpif.types import MAX_SET_ACTIONS, SET_FIELD_WIDTHS

    btf = bpf_object.btf()
    _, flow = btf.struct_layout("ovsbpf_flow")
    set_size, set_layout = btf.struct_layout("ovsbpf_set_value")
    assert flow["sets"][1] == MAX_SET_ACTIONS * set_size
    assert set_layout["value"][1] == set_layout["mask"][1] == max(SET_FIELD_WIDTHS.values())
    assert MAX_SET_ACTIONS & (MAX_SET_ACTIONS - 1) == 0  # the program masks the index
    band_size, _ = btf.struct_layout("ovsbpf_meter_band")
    _, meter = btf.struct_layout("ovsbpf_meter")
    assert meter["lock"] == (0, 4)
    assert MAX_METER_BANDS == structs.METER_MAX_BANDS
    assert meter["bands"][1] == MAX_METER_BANDS * band_size
    maps = {m.name: m for m in bpf_object.maps()}
    assert maps["meters"].max_entries == MAX_METERS == structs.MAX_METERS
    assert maps["meters"].value_size == ctypes.sizeof(structs.MeterStruct)
    assert set(structs.SET_FIELD_IDS) == set(SET_FIELD_WIDTHS)
