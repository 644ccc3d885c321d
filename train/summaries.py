"""TensorBoard scalar and image summaries without importing TensorBoard.

TF 2.21 does not depend on the tensorboard package, and `tf.summary.scalar` /
`tf.summary.image` fail without it. The event files they write are just
`tf.summary.write` with plugin metadata; these helpers write exactly that
(the "scalars" and "images" plugin formats), so training logs work on a bare
install and TensorBoard (installed separately to look at them) reads them as
usual.
"""

from __future__ import annotations

import tensorflow as tf
from tensorflow.core.framework import summary_pb2


def _metadata(plugin: str, description: str = "") -> bytes:
  md = summary_pb2.SummaryMetadata()
  md.plugin_data.plugin_name = plugin
  md.summary_description = description
  return md.SerializeToString()


def scalar(name: str, value, step=None) -> None:
  """Scalar summary in the TensorBoard "scalars" plugin format."""
  tf.summary.write(name, tf.cast(value, tf.float32), step=step, metadata=_metadata("scalars"))


def image(name: str, images, step=None, max_outputs: int = 4) -> None:
  """uint8 images [k, H, W, C] as the TensorBoard "images" plugin expects:
  a string tensor [width, height, png_1, ..., png_k]."""
  images = tf.convert_to_tensor(images)[:max_outputs]
  pngs = tf.map_fn(tf.image.encode_png, images, fn_output_signature=tf.string)
  shape = tf.shape(images)
  dims = tf.strings.as_string(tf.stack([shape[2], shape[1]]))
  tf.summary.write(name, tf.concat([dims, pngs], axis=0), step=step,
                   metadata=_metadata("images"))
