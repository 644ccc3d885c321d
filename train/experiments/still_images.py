"""Frames of training sequences as still photos with boxes, for build_synthetic.

  python -m train.experiments.still_images \\
      --sequences lasot:../shared/data/tracking/train/lasot,uav123:../shared/data/tracking/train/uav123 \\
      --every 10 --output_dir runs/data/train_stills

Re3 makes its synthetic occluded tracks from ImageNet DET photos. This machine
has no DET, so the frames of the real training sequences stand in for it:
every `--every`-th frame whose target is visible becomes one photo with one
box. The frames are not copied: OUT/<sequence>/<frame> is a symbolic link to
the sequence's image, and OUT/boxes.csv lists `image,xmin,ymin,xmax,ymax,label`
in the format `pipelines.build_synthetic --images_dir` reads
(pipelines/synthetic/sources.py). Boxes come from the same readers as the
evaluation (pipelines.readers.sequences), so they follow one convention.

Evaluation sequences (OTB, VOT) must never be given here: they are the test
set of train/experiments/re3_real.sh.
"""

from __future__ import annotations

import os
from typing import List, Sequence, Tuple

from configs import cli as cli_errors, quiet

quiet.setup()

from absl import app, flags  # noqa: E402
import numpy as np  # noqa: E402

from pipelines.readers.sequences import KINDS, read_sequences  # noqa: E402


def parse_specs(specs: Sequence[str]) -> List[Tuple[str, str]]:
  """['lasot:DIR', ...] -> [(kind, dir)], with a clear error for a bad entry."""
  out = []
  for spec in specs:
    if ":" not in spec:
      raise ValueError(f"--sequences entry {spec!r} must be KIND:DIR (KIND in {KINDS})")
    kind, path = spec.split(":", 1)
    if kind not in KINDS:
      raise ValueError(f"--sequences entry {spec!r}: kind {kind!r} not in {KINDS}")
    if not os.path.isdir(path):
      raise ValueError(f"--sequences entry {spec!r}: {path} is not a directory")
    out.append((kind, path))
  return out


def write_stills(specs: Sequence[Tuple[str, str]], output_dir: str, every: int) -> int:
  """Links the chosen frames and writes boxes.csv; returns the number of photos."""
  if every < 1:
    raise ValueError(f"--every must be >= 1, got {every}")
  os.makedirs(output_dir, exist_ok=True)
  lines = ["image,xmin,ymin,xmax,ymax,label"]
  for kind, root in specs:
    for seq in read_sequences(kind, root):
      seq_dir = os.path.join(output_dir, f"{kind}_{seq.name}")
      os.makedirs(seq_dir, exist_ok=True)
      ok = seq.visible & np.all(np.isfinite(seq.boxes_xyxy), axis=1)
      for i in np.flatnonzero(ok)[::every]:
        src = os.path.abspath(seq.frame_paths[i])
        name = f"{i:06d}{os.path.splitext(src)[1].lower()}"
        dst = os.path.join(seq_dir, name)
        if os.path.lexists(dst):
          os.remove(dst)
        os.symlink(src, dst)
        x1, y1, x2, y2 = seq.boxes_xyxy[i]
        lines.append(f"{kind}_{seq.name}/{name},{x1:.2f},{y1:.2f},{x2:.2f},{y2:.2f},{seq.name}")
  with open(os.path.join(output_dir, "boxes.csv"), "w") as f:
    f.write("\n".join(lines) + "\n")
  return len(lines) - 1


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__), not at import, like the other commands."""
  flags.DEFINE_list("sequences", [], "KIND:DIR entries (KIND as pipelines.readers.sequences).",
                    flag_values=flag_values)
  flags.DEFINE_string("output_dir", None, "Folder for the links and boxes.csv.",
                      flag_values=flag_values)
  flags.DEFINE_integer("every", 10, "Take every n-th frame with a visible target.",
                       flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def main(argv, flag_values=None):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flag_values or flags.FLAGS
  if not f.output_dir or not f.sequences:
    raise app.UsageError("--sequences and --output_dir are required")
  n = write_stills(parse_specs(f.sequences), f.output_dir, f.every)
  print(f"{n} photos with boxes in {f.output_dir} (boxes.csv)")


if __name__ == "__main__":
  define_flags()
  app.run(main)
