"""Small DataFrame helpers shared by the charts and the report."""
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
