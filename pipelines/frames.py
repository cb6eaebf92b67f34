"""Small DataFrame helpers shared by the stages, the charts and the report."""
from __future__ import annotations

import numpy as np
import pandas as pd
from pandas.core.dtypes.cast import maybe_box_native
from pandas.core.dtypes.dtypes import BaseMaskedDtype


def records(frame: pd.DataFrame | None) -> list[dict]:
    """`frame.to_dict("records")` (and [] for None or an empty frame): the same dicts of Python scalars,
    built from one object array rather than a Series per column per row — the report asks for the rows
    of a few hundred small frames, and `to_dict`'s fixed cost per call dominated its rendering."""
    if frame is None or frame.empty:
        return []
    dtypes = list(frame.dtypes)
    if not all(_plain_dtype(d) for d in dtypes):
        return frame.to_dict("records")
    cells = frame.to_numpy(dtype=object)      # numpy columns' cells become Python scalars here
    for i, dtype in enumerate(dtypes):
        if dtype == object or isinstance(dtype, pd.api.extensions.ExtensionDtype):
            # as to_dict does: numpy scalars in object columns become Python ones, pd.NA becomes None
            cells[:, i] = [maybe_box_native(v) for v in cells[:, i]]
    columns = frame.columns.tolist()
    return [dict(zip(columns, row)) for row in cells.tolist()]


def _plain_dtype(dtype) -> bool:
    """Column types whose cells `records` converts exactly as `to_dict` does (others go through to_dict)."""
    if isinstance(dtype, np.dtype):
        return dtype.kind in "fiubO"
    return isinstance(dtype, (BaseMaskedDtype, pd.StringDtype))


def column_arrays(frame: pd.DataFrame, names) -> list:
    """`[frame[name].array for name in names]` without a Series per column.

    `frame[name]` builds (and caches) a Series, ~40 µs; the stages read a few hundred columns of each table
    from frames that are new each time, so that was a sizeable share of a table's cost. The arrays are the
    ones the Series would hold (pandas' `_get_column_array`; plain numpy columns wrapped as `.array` does).
    Repeated column names, or a pandas without the accessor, take the Series route."""
    get = getattr(frame, "_get_column_array", None)
    if get is None or not frame.columns.is_unique:
        return [frame[name].array for name in names]
    columns = frame.columns
    arrays = [get(columns.get_loc(name)) for name in names]
    return [pd.arrays.NumpyExtensionArray(a) if isinstance(a, np.ndarray) else a for a in arrays]
