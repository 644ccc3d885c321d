"""Beam job: ImageNet DET -> object records (for the synthetic-track job).

  python -m pipelines.build_det --input_dir=/data/ILSVRC2015 --output_dir=/data/records/det \
      --split=train --num_shards=128 [--det_max_side=500]

An object record is a track record of length 1 (source "det", label = the
synset): the whole image and one box. An image with several objects gives
several records sharing the image. Objects are judged in the decoded image's
pixels (boxes scaled when the decoded size differs from the XML's <size>,
then clipped to the image); degenerate boxes, boxes outside the image and
objects under --det_min_area_fraction of the image area (Re3: 1%) go to the
rejected output with their reason and are counted; images without objects
are rejected as `no_objects`.
"""

from __future__ import annotations

import sys

import apache_beam as beam
import numpy as np

from pipelines import core, job_flags
from pipelines.readers import det


class DetJobOptions(core.DatasetJobOptions, job_flags.DetOptions, job_flags.DetSubsetOptions):
  """The flags build_det reads (composed; defines none itself)."""


def _subset(opts) -> str:
  return opts.det_subset or opts.split


def validate(opts) -> None:
  core.check_common_options(opts)
  if not 0.0 <= opts.det_min_area_fraction < 1.0:
    raise core.JobConfigError(
        f"--det_min_area_fraction must be in [0, 1), got {opts.det_min_area_fraction}")
  if opts.det_max_side < 0:
    raise core.JobConfigError(f"--det_max_side must be >= 0, got {opts.det_max_side}")
  try:
    dirs = det.annotation_dirs(opts.input_dir, _subset(opts))
  except det.DetLayoutError as e:
    raise core.JobConfigError(f"--input_dir: {e}") from None
  if not dirs:
    raise core.JobConfigError(
        f"--input_dir {opts.input_dir!r}: no .xml files under Annotations/DET/{_subset(opts)}")


class ProcessDetImage(beam.DoFn):
  """Annotation path -> one object record per valid object, plus rejects."""

  def __init__(self, root: str, subset: str, min_area_fraction: float, max_side: int):
    self._root = root
    self._subset = subset
    self._min_area = float(min_area_fraction)
    self._max_side = int(max_side)

  def setup(self):
    from pipelines import images, schema  # pylint: disable=g-import-not-at-top
    from pipelines.readers import voc_xml  # pylint: disable=g-import-not-at-top
    self._images, self._schema, self._voc = images, schema, voc_xml
    self._ann_base = det.subset_dirs(self._root, self._subset)[0]

  def process(self, xml_path: str):
    images, schema = self._images, self._schema
    try:
      ann = self._voc.parse_voc_xml(xml_path)
    except self._voc.VocXmlError as e:
      yield core.reject(xml_path, "malformed_annotation", str(e))
      return
    if not ann.objects:
      yield core.reject(xml_path, "no_objects", "the annotation lists no object")
      return
    image_path = det.image_path_for(self._root, self._subset, xml_path)
    if image_path is None:
      yield core.reject(xml_path, "missing_image", "no image with this annotation's name")
      return
    try:
      data = images.read_bytes(image_path)
      stored, h, w, (sx, sy) = images.frame_bytes_for_record(data, image_path, self._max_side)
    except images.ImageError as e:
      yield core.reject(image_path, "corrupt_image", str(e))
      return
    except Exception as e:  # unreadable file  # pylint: disable=broad-except
      yield core.reject(image_path, "missing_image", f"not readable: {e}")
      return
    core.count("images")
    dh, dw = int(round(h / sy)), int(round(w / sx))  # decoded size before --det_max_side
    rel = xml_path[len(self._ann_base):].lstrip("/")[:-len(".xml")]
    for k, obj in enumerate(ann.objects):
      box, reason, detail = det.judge_box(
          [obj.xmin, obj.ymin, obj.xmax, obj.ymax], dh, dw, (ann.height, ann.width),
          self._min_area)
      if detail.startswith("scaled"):
        core.count("boxes_scaled_to_decoded_size")
      if box is None:
        yield core.reject(xml_path, reason, f"<object> #{k} ({obj.name}): {detail}")
        continue
      box = box * np.array([sx, sy, sx, sy])
      track = schema.Track(
          track_id=f"det/{self._subset}/{rel}/{k:02d}", source="det", label=obj.name,
          height=h, width=w, images=[stored], boxes_xyxy=box[None], visible=[1],
          frame_index=[0])
      core.count("objects")
      yield (track.track_id, schema.serialize_track(track), 1)


def build(p: beam.Pipeline, opts) -> None:
  subset = _subset(opts)
  dirs = det.annotation_dirs(opts.input_dir, subset)
  built = (p
           | "AnnotationDirs" >> beam.Create(dirs)
           | "ListXml" >> beam.FlatMap(det.list_xmls)
           | "Reshuffle" >> beam.Reshuffle()
           | "ProcessImages" >> beam.ParDo(ProcessDetImage(
               opts.input_dir, subset, opts.det_min_area_fraction, opts.det_max_side)
                                          ).with_outputs(core.REJECTED_TAG, main="records"))
  _ = (built.records, built[core.REJECTED_TAG]) | "Write" >> core.WriteShardedRecords(
      opts.output_dir, opts.name or "det", opts.split, opts.num_shards,
      extra_info={"source": "det", "subset": subset, "record": "one object per record",
                  "min_area_fraction": opts.det_min_area_fraction,
                  "max_side": opts.det_max_side})


def main(argv=None):
  return core.run_job(argv if argv is not None else sys.argv[1:], DetJobOptions, validate,
                      build, "build_det", __doc__)


if __name__ == "__main__":
  core.cli_main(main, "build_det")
