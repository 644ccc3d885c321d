"""The Re3 towers, one module per family, each with its weight importer beside it.

| model.tower          | network                              | importer (weights)                       |
|----------------------|--------------------------------------|------------------------------------------|
| `caffenet`           | built in model.re3 (conv1-conv5)     | `caffenet_import` (Caffe NumPy dict)     |
| `efficientnet_lite0` | `efficientnet_lite` (ImageNet)       | `efficientnet_import` + `torch_legacy`   |
| `nanotrack_v2`       | `nanotrack` (tracking-pretrained)    | `nanotrack` (OpenCV's NanoTrack ONNX)    |

NanoTrack v2's head (`model.template: nano_head`, not a tower but of the same
family) is `nanotrack_head`, its importer beside it.
"""

from typing import Dict, Tuple

import tensorflow as tf


class TappedBlocks:
  """What the pretrained towers share: they run `blocks` (Keras layers named
  'block<i>') and return the outputs of the blocks in `taps` and of the last
  one as {'block<i>': features}."""

  blocks: list
  taps: Tuple[int, ...]
  num_blocks: int

  @property
  def output_names(self) -> Tuple[str, ...]:
    """Keys of the tower's output dict: the taps, then the last block (no duplicates)."""
    names = [f"block{t}" for t in self.taps]
    last = f"block{self.num_blocks - 1}"
    return tuple(names + ([last] if last not in names else []))

  # Plain Python over the layers: nothing for AutoGraph to convert (converting
  # it once turned the `output_names` property into a call in a long test run).
  @tf.autograph.experimental.do_not_convert
  def run_blocks(self, x) -> Dict[str, object]:
    wanted = set(self.output_names)
    out = {}
    for block in self.blocks:
      x = block(x)
      if block.name in wanted:
        out[block.name] = x
    return out
