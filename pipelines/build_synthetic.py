"""Re3 synthetic occluded tracks from still images, as a Beam job.

One job in one module (about 400 lines): its object sources, the simulation step and the
pipeline are the stages of that job; the simulator itself is pipelines/synthetic/.

  python -m pipelines.build_synthetic --output_dir OUT [--num_tracks 1000]
      [--track_length 32] [--canvas_size 400] [--seed 0] [--preview 6]
      [--det_dir DET_RECORDS_OR_DET_ROOT] [--images_dir PHOTOS]

Sources of objects (pooled when several are given):
  --det_dir     object records written by `pipelines.build_det` (track
                records of length 1, source "det"), or an ImageNet DET root
                (Annotations/DET + Data/DET, read through the VOC XML reader)
  --images_dir  any folder of photos with a VOC-style XML of the same stem
                beside each, or a boxes.csv (format in
                pipelines/synthetic/sources.py)
  (none)        the embedded default: procedurally drawn textured images
                (pipelines/synthetic/procedural.py). It needs nothing from the
                network and is meant for trying the system and smoke tests;
                real training uses DET images.

Each track: the object's image is the background, a context patch around
the object is the target, random patches of the same image are distractors
behind it and occluders in front; everything moves with Re3's motion model
(pipelines/synthetic/simulator.py, every constant a flag below). Records:
track records with source "synthetic", JPEG frames, xyxy boxes of the
target's true extent, bbox/occlusion = exact occluded fraction from the
drawn occluders, bbox/visible = 0 where it exceeds --occlusion_threshold,
frame 0 always unoccluded. Dataset name "synthetic" (--name), split from
--split.

Determinism: track i depends only on --seed, i, the simulator flags and the
set of source objects: the object is picked from the sorted object keys by
a Generator seeded from sha256(seed, "pick", i) and the simulation by one
seeded from sha256(seed, "track", i); the writer shards by track id.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional, Sequence, Tuple

from configs import quiet

quiet.setup()

import apache_beam as beam  # noqa: E402
import numpy as np  # noqa: E402

from pipelines import images, options, runner, schema, shards, writer  # noqa: E402
from pipelines.options import SyntheticJobOptions  # noqa: E402
from pipelines.readers import det, fs  # noqa: E402
from pipelines.schema import Reject, RejectReason  # noqa: E402
from pipelines.synthetic import common, procedural, rng, simulator, sources  # noqa: E402
from pipelines.synthetic.simulator import SimulatorConfig  # noqa: E402

SOURCE = "synthetic"
DEFAULT_NAME = "synthetic"


def simulator_config(opts: SyntheticJobOptions) -> SimulatorConfig:
  return SimulatorConfig(**{f.name: getattr(opts, f.name)
                            for f in dataclasses.fields(SimulatorConfig)})


def validate(opts: SyntheticJobOptions) -> None:
  """Every flag checked before the pipeline starts (JobConfigError naming it)."""
  options.check_common_options(opts, need_input=False)
  common.check_generator_options(opts)
  if opts.num_tracks is None or opts.num_tracks < 1:
    raise options.JobConfigError(f"--num_tracks must be >= 1, got {opts.num_tracks}")
  if opts.jpeg_quality is None or not 1 <= opts.jpeg_quality <= 100:
    raise options.JobConfigError(f"--jpeg_quality must be in [1, 100], got {opts.jpeg_quality}")
  if opts.min_object_fraction is None or not 0 <= opts.min_object_fraction < 1:
    raise options.JobConfigError(
        f"--min_object_fraction must be in [0, 1), got {opts.min_object_fraction}")
  try:
    simulator_config(opts).validate()
  except ValueError as e:
    raise options.JobConfigError(str(e)) from None
  if opts.det_dir:
    if not fs.isdir(opts.det_dir):
      raise options.JobConfigError(f"--det_dir {opts.det_dir!r} is not a directory")
    if sources.is_det_root(opts.det_dir):
      try:
        dirs = det.annotation_dirs(opts.det_dir, det_subset(opts))
      except det.DetLayoutError as e:
        raise options.JobConfigError(f"--det_dir: {e}") from None
      if not dirs:
        raise options.JobConfigError(f"--det_dir {opts.det_dir!r}: no .xml files under "
                                  f"Annotations/DET/{det_subset(opts)}")
    elif not shards.record_files(opts.det_dir):
      raise options.JobConfigError(
          f"--det_dir {opts.det_dir!r} holds neither track record shards "
          f"(*-*.tfrecord-*-of-*, from pipelines.build_det) nor an ImageNet DET root "
          f"(Annotations/DET)")
  if opts.images_dir and not fs.isdir(opts.images_dir):
    raise options.JobConfigError(f"--images_dir {opts.images_dir!r} is not a directory")


def det_subset(opts) -> str:
  """Folder of a DET root to read: --det_subset, else --split (as build_det)."""
  return opts.det_subset or opts.split


def track_id(seed: int, index: int) -> str:
  return f"synthetic/{seed}/{index:07d}"


# ---------------------------------------------------------------------------
# Reading source objects
# ---------------------------------------------------------------------------


class ReadObjectRecordsFn(beam.DoFn):
  """Record shard file -> its object records, in one of two passes.

  Object records carry their image, and DET has ~480k of them, so the job
  reads the shards twice rather than hold every image while the tracks pick
  their objects:
    index pass (no side input): a SourceObject *without* image bytes per
      usable record (for the keys), and the rejects;
    select pass (`picks`: key -> track indices): (object with image, track
      index) for the picked records only; no rejects (the index pass made
      them).
  Reads with shards.read_record_file (tf.data; Beam's TFRecord source needs
  an extra CRC package): a shard that is corrupt or truncated midway keeps
  the records before the damage and rejects the rest.
  """

  def __init__(self, min_fraction: float):
    self._min_fraction = min_fraction

  def process(self, filename, picks=None):
    try:
      for index, raw in shards.read_record_file(filename):
        name = f"{filename} record {index}"
        try:
          obj = sources.object_from_record(raw, name, self._min_fraction)
        except sources.SourceError as e:
          if picks is None:
            yield writer.reject(e.to_reject(filename, record=index))
          continue
        if picks is None:
          writer.count("source_objects")
          yield dataclasses.replace(obj, image_bytes=b"")
        else:
          for track in sorted(picks.get(obj.key, ())):
            yield obj, track
    except shards.CorruptRecordFile as e:
      if picks is None:
        yield writer.reject(e.to_reject(filename))


class ReadXmlObjectsFn(beam.DoFn):
  """An annotation -> SourceObjects and rejects.

  Elements are (key_prefix, image_path, xml_path) for a photo folder, or a
  bare XML path under a DET root (`det_root` set), whose image and key are
  found the way build_det finds them.
  """

  def __init__(self, min_fraction: float, det_root: str = "", det_subset: str = ""):
    self._min_fraction = min_fraction
    self._det_root = det_root
    self._det_subset = det_subset

  def process(self, element):
    if self._det_root:
      xml_path = element
      key_prefix = sources.det_key_prefix(self._det_root, self._det_subset, xml_path)
      image_path = det.image_path_for(self._det_root, self._det_subset, xml_path) or ""
    else:
      key_prefix, image_path, xml_path = element
    try:
      for item in sources.objects_from_xml(image_path, xml_path, key_prefix, self._min_fraction):
        if isinstance(item, sources.SourceError):
          yield writer.reject(item.to_reject(xml_path))
        else:
          writer.count("source_objects")
          yield item
    except sources.SourceError as e:
      yield writer.reject(e.to_reject(xml_path))


class PickObjectFn(beam.DoFn):
  """Track index -> (object key, index): a uniform draw from the sorted keys.

  `keys` holds (key, count) of every object key; keys seen more than once
  (the same record in two shard files, say) are left out, so no track is
  written twice (they are reported by `_duplicate_key_rejects`).
  """

  def __init__(self, seed: int):
    self._seed = seed
    self._keys_src = None
    self._keys = []

  def process(self, index, keys):
    if self._keys_src is not keys:
      self._keys = sorted(k for k, n in keys if n == 1)
      self._keys_src = keys
    if not self._keys:
      yield writer.reject(Reject(
          "<sources>", RejectReason.NO_SOURCE_OBJECTS,
          "the sources gave no usable object (see the other rejects)", {"track": index}))
      return
    gen = rng.track_rng(self._seed, "pick", index)
    yield self._keys[int(gen.integers(len(self._keys)))], index


def _duplicate_key_rejects(key_count):
  """(key, count) -> the reject record (a plain element here, not a tagged output)."""
  key, n = key_count
  if n > 1:
    yield writer.reject(Reject(
        key, RejectReason.DUPLICATE_OBJECT_KEY,
        f"{n} source objects share this key; none of them is used")).value


class SelectObjectsFn(beam.DoFn):
  """SourceObject -> (object, track index) for every track that picked it."""

  def process(self, obj, picks):
    for index in sorted(picks.get(obj.key, ())):
      yield obj, index


# ---------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------


class SimulateTrackFn(beam.DoFn):
  """(SourceObject or None, track index) -> (key, record, frames) or a reject.

  None is the embedded procedural source: the image is drawn from the
  track's own Generator.
  """

  def __init__(self, cfg: SimulatorConfig, seed: int, jpeg_quality: int, min_fraction: float):
    self._cfg = cfg
    self._seed = seed
    self._quality = jpeg_quality
    self._min_fraction = min_fraction
    self._last = (None, None)

  def setup(self):
    self._cfg.validate()

  def _image(self, obj):
    """Decoded image of an object, kept for the next track of the same image."""
    ident = obj.image_path or obj.key
    if self._last[0] != ident:
      self._last = (ident, obj.load_image())
    return self._last[1]

  def process(self, element):
    obj, index = element
    gen = rng.track_rng(self._seed, "track", index)
    if obj is None:
      image, objects = procedural.make_image(gen)
      box, label = objects[int(gen.integers(len(objects)))]
      name = f"<procedural {index}>"
    else:
      name, label = obj.name, obj.label
      try:
        image = self._image(obj)
      except images.ImageError as e:
        yield writer.reject(Reject(obj.image_path or obj.name, RejectReason.CORRUPT_IMAGE, str(e),
                                   {"track": index}))
        return
      try:
        box = obj.box_in(image, self._min_fraction)
      except sources.SourceError as e:
        yield writer.reject(e.to_reject(name, track=index))
        return
    try:
      sim = simulator.simulate_track(image, box, gen, self._cfg)
    except simulator.SimulationError as e:
      yield writer.reject(e.to_reject(name, track=index))
      return
    n = len(sim.frames)
    track = schema.Track(
        track_id=track_id(self._seed, index), source=SOURCE, height=self._cfg.canvas_size,
        width=self._cfg.canvas_size,
        images=[images.encode_jpeg(f, self._quality) for f in sim.frames],
        boxes_xyxy=sim.boxes_xyxy, visible=sim.visible, frame_index=np.arange(n),
        occlusion=sim.occlusion, label=label)
    writer.count("tracks_generated")
    writer.count("frames_generated", n)
    writer.count("frames_occluded", int(n - sim.visible.sum()))
    writer.count("frames_partly_occluded", int(np.count_nonzero(sim.occlusion > 0)))
    yield track.track_id, schema.serialize_track(track), n


# ---------------------------------------------------------------------------
# Pipeline
# ---------------------------------------------------------------------------


def source_description(opts) -> str:
  parts = [f"det_dir={opts.det_dir}"] if opts.det_dir else []
  parts += [f"images_dir={opts.images_dir}"] if opts.images_dir else []
  return ", ".join(parts) or "embedded procedural images"


def _counted(reject: dict) -> dict:
  """A reject found while listing (in the driver), counted like writer.reject does."""
  writer.count(f"rejected_{reject['reason']}")
  return reject


def _read_sources(p: beam.Pipeline, opts: SyntheticJobOptions):
  """(objects, reject PCollections, select) where `objects` holds every
  usable object without image bytes (for picking) and `select(picks_view)`
  gives the (object, track index) PCollection of the picked ones."""
  frac = opts.min_object_fraction
  light, rejects, record_files = [], [], None
  if opts.det_dir:
    if sources.is_det_root(opts.det_dir):
      subset = det_subset(opts)
      read = (p | "DetXmlDirs" >> beam.Create(det.annotation_dirs(opts.det_dir, subset))
              | "DetXmlFiles" >> beam.FlatMap(det.list_xmls)
              | "DetXmlSpread" >> beam.Reshuffle()
              | "ReadDetXml" >> beam.ParDo(ReadXmlObjectsFn(frac, opts.det_dir, subset))
              .with_outputs(writer.REJECTED_TAG, main="objects"))
    else:
      record_files = (p | "DetRecordFiles" >> beam.Create(shards.record_files(opts.det_dir))
                      | "DetFilesSpread" >> beam.Reshuffle())
      read = (record_files
              | "IndexDetRecords" >> beam.ParDo(ReadObjectRecordsFn(frac)).with_outputs(
                  writer.REJECTED_TAG, main="objects"))
    light.append(read.objects)
    rejects.append(read[writer.REJECTED_TAG])
  if opts.images_dir:
    xml_entries, listed, listed_rejects = sources.scan_images_dir(opts.images_dir)
    read = (p | "PhotoXmlFiles" >> beam.Create(xml_entries)
            | "ReadPhotoXml" >> beam.ParDo(ReadXmlObjectsFn(frac)).with_outputs(
                writer.REJECTED_TAG, main="objects"))
    light += [read.objects, p | "BoxesFileObjects" >> beam.Create(listed)]
    rejects += [read[writer.REJECTED_TAG],
                p | "ListingRejects" >> beam.Create([r.to_json_dict() for r in listed_rejects])
                | "CountListingRejects" >> beam.Map(_counted)]
  objects = light[0] if len(light) == 1 else light | "AllObjects" >> beam.Flatten()

  def select(picks):
    # Objects by path are light: select from them. Record objects: re-read.
    by_path = (objects | "ObjectsByPath" >> beam.Filter(lambda o: bool(o.image_path))
               | "SelectByPath" >> beam.ParDo(SelectObjectsFn(), picks=picks))
    if record_files is None:
      return by_path
    by_record = record_files | "SelectDetRecords" >> beam.ParDo(
        ReadObjectRecordsFn(frac), picks=picks)
    return (by_path, by_record) | "AllSelected" >> beam.Flatten()

  return objects, rejects, select


def build(p: beam.Pipeline, opts: SyntheticJobOptions) -> None:
  cfg = simulator_config(opts)
  simulate = SimulateTrackFn(cfg, opts.seed, opts.jpeg_quality, opts.min_object_fraction)
  indices = p | "TrackIndices" >> beam.Create(range(opts.num_tracks))
  rejects = []
  if not (opts.det_dir or opts.images_dir):
    work = (indices
            | "Procedural" >> beam.Map(lambda i: (None, i))
            | "SpreadTracks" >> beam.Reshuffle())
  else:
    objects, source_rejects, select = _read_sources(p, opts)
    rejects += source_rejects
    key_counts = (objects
                  | "ObjectKeys" >> beam.Map(lambda o: o.key)
                  | "CountKeys" >> beam.combiners.Count.PerElement())
    # The main output's type, declared: Beam's inference would mix in the rejects' TaggedOutput.
    picked = indices | "PickObjects" >> beam.ParDo(
        PickObjectFn(opts.seed), keys=beam.pvalue.AsList(key_counts)).with_output_types(
            Tuple[str, int]).with_outputs(writer.REJECTED_TAG, main="picks")
    rejects.append(picked[writer.REJECTED_TAG])
    rejects.append(key_counts | "DuplicateKeys" >> beam.FlatMap(_duplicate_key_rejects))
    by_key = picked.picks | "TracksPerObject" >> beam.GroupByKey()
    work = select(beam.pvalue.AsDict(by_key)) | "SpreadTracks" >> beam.Reshuffle()
  simulated = work | "Simulate" >> beam.ParDo(simulate).with_outputs(
      writer.REJECTED_TAG, main="records")
  rejects.append(simulated[writer.REJECTED_TAG])
  all_rejects = rejects | "AllRejects" >> beam.Flatten()
  info = {"generator": "pipelines.build_synthetic", "seed": opts.seed,
          "source": source_description(opts), "simulator": dataclasses.asdict(cfg),
          "jpeg_quality": opts.jpeg_quality, "min_object_fraction": opts.min_object_fraction}
  _ = ((simulated.records, all_rejects)
       | "Write" >> writer.WriteShardedRecords(opts.output_dir, opts.name or DEFAULT_NAME,
                                              opts.split, opts.num_shards, extra_info=info))


def main(argv: Optional[Sequence[str]] = None) -> dict:
  argv = list(sys.argv[1:] if argv is None else argv)
  if runner.maybe_print_help(argv, SyntheticJobOptions, "pipelines.build_synthetic", __doc__):
    return {}
  counters = runner.run_job(argv, SyntheticJobOptions, validate, build, "build_synthetic")
  opts = runner.make_pipeline_options(argv).view_as(SyntheticJobOptions)
  common.write_previews(opts, opts.name or DEFAULT_NAME, [opts.split])
  return counters


if __name__ == "__main__":
  # Run the importable module's main so the DoFns pickled for workers belong
  # to `pipelines.build_synthetic`, not to `__main__`.
  from pipelines import build_synthetic as _job  # pylint: disable=import-self
  runner.cli_main(_job.main, "build_synthetic")
