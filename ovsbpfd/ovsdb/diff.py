"""Column diffs in the form OVS uses for update2 "modify" and "_is_diff" log records.

Sets with more than one possible element travel as the symmetric difference,
maps as the pairs that were removed (old value) or added/changed (new value),
and everything with at most one element as the new value.
"""

from __future__ import annotations

from ovs.db.data import Datum


def datum_diff(old: Datum, new: Datum) -> Datum:
    t = old.type
    if t.is_map():
        values = {k: v for k, v in old.values.items() if k not in new.values}
        for k, v in new.values.items():
            if old.values.get(k, None) != v or k not in old.values:
                values[k] = v
        return Datum(t, values)
    if t.n_max == 1:
        return new
    values = {k: None for k in old.values if k not in new.values}
    values.update({k: None for k in new.values if k not in old.values})
    return Datum(t, values)


def apply_diff(old: Datum, diff: Datum) -> Datum:
    t = old.type
    if t.is_map():
        values = dict(old.values)
        for k, v in diff.values.items():
            if k in values and values[k] == v:
                del values[k]
            else:
                values[k] = v
        return Datum(t, values)
    if t.n_max == 1:
        return Datum(t, dict(diff.values))
    values = dict(old.values)
    for k in diff.values:
        if k in values:
            del values[k]
        else:
            values[k] = None
    return Datum(t, values)
