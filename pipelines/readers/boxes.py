"""The bad-box rule of every reader (VID, ALOV, DET and the synthetic job's
sources through det.judge_box, the benchmark sequences).

An annotated box is usable when model.geometry.box_is_valid_xyxy says so:
finite corners, positive width and height. Any other annotated box is a
`bad_box` reject (RejectReason.BAD_BOX), described by `bad_box_detail` in the
same words everywhere. What counts as "no box here" (a NaN row of a benchmark
ground truth, a frame the dataset flags absent) is each layout's own marker
and not a bad box.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from model.geometry import box_is_valid_xyxy


def bad_box_detail(box_xyxy) -> Optional[str]:
  """None for a usable xyxy box; else why it is a bad box ("a box of zero
  or negative size [x1, y1, x2, y2]" or "a non-finite box [...]")."""
  b = np.asarray(box_xyxy, np.float64).reshape(4)
  if bool(box_is_valid_xyxy(b)):
    return None
  shown = np.round(b, 2).tolist()
  if not np.all(np.isfinite(b)):
    return f"a non-finite box {shown}"
  return f"a box of zero or negative size {shown}"
