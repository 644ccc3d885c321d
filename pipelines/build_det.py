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

from configs import quiet

quiet.setup()

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402

from pipelines import images, options, runner, schema, writer  # noqa: E402
from pipelines.readers import det, voc_xml  # noqa: E402
from pipelines.schema import Reject, RejectReason  # noqa: E402


class DetJobOptions(options.DatasetJobOptions, options.DetOptions, options.DetSubsetOptions):
  """The flags build_det reads (composed; defines none itself)."""


def _subset(opts) -> str:
  return opts.det_subset or opts.split


def validate(opts) -> None:
  options.check_common_options(opts)
  if not 0.0 <= opts.det_min_area_fraction < 1.0:
    raise options.JobConfigError(
        f"--det_min_area_fraction must be in [0, 1), got {opts.det_min_area_fraction}")
  if opts.det_max_side < 0:
    raise options.JobConfigError(f"--det_max_side must be >= 0, got {opts.det_max_side}")
  try:
    dirs = det.annotation_dirs(opts.input_dir, _subset(opts))
  except det.DetLayoutError as e:
    raise options.JobConfigError(f"--input_dir: {e}") from None
  if not dirs:
    raise options.JobConfigError(
        f"--input_dir {opts.input_dir!r}: no .xml files under Annotations/DET/{_subset(opts)}")


class ProcessDetImage(beam.DoFn):
  """Annotation path -> one object record per valid object, plus rejects."""

  def __init__(self, root: str, subset: str, min_area_fraction: float, max_side: int):
    self._root = root
    self._subset = subset
    self._min_area = float(min_area_fraction)
    self._max_side = int(max_side)

  def setup(self):
    self._ann_base = det.subset_dirs(self._root, self._subset)[0]

  def process(self, xml_path: str):
    try:
      ann = voc_xml.parse_voc_xml(xml_path)
    except voc_xml.VocXmlError as e:
      yield writer.reject(Reject(xml_path, RejectReason.MALFORMED_ANNOTATION, str(e)))
      return
    if not ann.objects:
      yield writer.reject(Reject(xml_path, RejectReason.NO_OBJECTS,
                                 "the annotation lists no object"))
      return
    image_path = det.image_path_for(self._root, self._subset, xml_path)
    if image_path is None:
      yield writer.reject(Reject(xml_path, RejectReason.MISSING_IMAGE,
                                 "no image with this annotation's name"))
      return
    try:
      data = images.read_bytes(image_path)
      stored, h, w, (sx, sy) = images.frame_bytes_for_record(data, image_path, self._max_side)
    except images.ImageError as e:
      yield writer.reject(Reject(image_path, RejectReason.CORRUPT_IMAGE, str(e)))
      return
    except Exception as e:  # unreadable file  # pylint: disable=broad-except
      yield writer.reject(Reject(image_path, RejectReason.MISSING_IMAGE, f"not readable: {e}"))
      return
    writer.count("images")
    dh, dw = int(round(h / sy)), int(round(w / sx))  # decoded size before --det_max_side
    rel = xml_path[len(self._ann_base):].lstrip("/")[:-len(".xml")]
    for k, obj in enumerate(ann.objects):
      if (ann.height, ann.width) != (dh, dw):
        writer.count("boxes_scaled_to_decoded_size")
      try:
        box = det.judge_box([obj.xmin, obj.ymin, obj.xmax, obj.ymax], dh, dw,
                            (ann.height, ann.width), self._min_area)
      except det.BoxRejected as e:
        yield writer.reject(Reject(xml_path, e.reason, f"<object> #{k} ({obj.name}): {e}"))
        continue
      box = box * np.array([sx, sy, sx, sy])
      track = schema.Track(
          track_id=f"det/{self._subset}/{rel}/{k:02d}", source="det", label=obj.name,
          height=h, width=w, images=[stored], boxes_xyxy=box[None], visible=[1],
          frame_index=[0])
      writer.count("objects")
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
                                          ).with_outputs(writer.REJECTED_TAG, main="records"))
  _ = (built.records, built[writer.REJECTED_TAG]) | "Write" >> writer.WriteShardedRecords(
      opts.output_dir, opts.name or "det", opts.split, opts.num_shards,
      extra_info={"source": "det", "subset": subset, "record": "one object per record",
                  "min_area_fraction": opts.det_min_area_fraction,
                  "max_side": opts.det_max_side})


def main(argv=None):
  return runner.run_job(argv if argv is not None else sys.argv[1:], DetJobOptions, validate,
                        build, "build_det", __doc__)


if __name__ == "__main__":
  runner.cli_main(main, "build_det")
