"""The dataset jobs on --runner=DaskRunner (a 2-worker dask.distributed
LocalCluster): all seven jobs write byte-identical records, rejected-*.jsonl
and dataset_info.json to the DirectRunner's on the small real-layout trees
(bad inputs included);
the Beam Dask runner's gaps that pipelines.dask_runner closes; a missing dask
naming the extra; a worker SIGKILLed mid-job; no Prism download attempt."""

import logging
import os
import signal
import sys
import threading
import time

import apache_beam as beam
import distributed
import pytest
import tensorflow as tf

import pipelines
from pipelines import (build_alov, build_crop_pairs, build_det, build_moving_mnist,
                       build_sequences, build_synthetic, build_vid, dask_runner, options, runner,
                       shards)

from tests import dataset_trees as trees


def dir_bytes(out_dir):
  """Every file a job leaves (its lock file is gone after the run)."""
  return {n: open(os.path.join(out_dir, n), "rb").read() for n in sorted(os.listdir(out_dir))}


@pytest.fixture(scope="module")
def cluster():
  """One 2-worker LocalCluster for the module (each worker imports TF once)."""
  c = dask_runner.start_local_cluster(2)
  yield c
  c.close()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, shared_dir):
  root = tmp_path_factory.mktemp("dask_trees")
  trees.make_vid_tree(str(root / "vid"))
  trees.make_det_tree(str(root / "det"))
  ann_text = (shared_dir / "data/format-samples/alov/01-Light_video00001.ann").read_text()
  trees.make_alov_tree(str(root / "alov"), ann_text)
  seqs = trees.make_sequence_trees(str(root / "seq"))
  # Track records for build_crop_pairs: the OTB tree through the DirectRunner.
  build_sequences.main([f"--input_dir={seqs['otb'][0]}", "--sequence_kind=otb",
                        f"--output_dir={root / 'otb_records'}", "--num_shards=2"])
  return {"root": root, "seq": seqs, "mnist": str(shared_dir / "data" / "mnist")}


def test_missing_dask_names_the_extra(monkeypatch, tmp_path, inputs):
  for name in [m for m in sys.modules
               if m in ("dask", "distributed") or m.startswith(("dask.", "distributed."))]:
    monkeypatch.delitem(sys.modules, name)
  for name in [m for m in sys.modules if m.startswith("apache_beam.runners.dask")]:
    monkeypatch.delitem(sys.modules, name)
  monkeypatch.delitem(sys.modules, "pipelines.dask_runner")
  monkeypatch.delattr(pipelines, "dask_runner")
  monkeypatch.setitem(sys.modules, "dask", None)  # `import dask` now fails as if not installed
  monkeypatch.setitem(sys.modules, "distributed", None)
  seq = inputs["seq"]
  with pytest.raises(options.JobConfigError, match=r"'dask' extra.*pip install 're3-tf\[dask\]'"):
    build_sequences.main([f"--input_dir={seq['otb'][0]}", "--sequence_kind=otb",
                          f"--output_dir={tmp_path / 'out'}", "--runner=DaskRunner"])
  assert not (tmp_path / "out").exists()


def _cases(inputs):
  seq = inputs["seq"]
  root = inputs["root"]
  return {
      # OTB: a corrupt frame; VOT: a malformed row (track-building jobs).
      "sequences_otb": (build_sequences, [f"--input_dir={seq['otb'][0]}", "--sequence_kind=otb",
                                          "--num_shards=2"]),
      "sequences_vot": (build_sequences, [f"--input_dir={seq['vot'][0]}", "--sequence_kind=vot",
                                          "--num_shards=2"]),
      # VID: occluded/absent frames, truncated XML, corrupt JPEG, scaled boxes, empty video;
      # ALOV and DET with their bad inputs; crop pairs (jittered) from track records.
      "vid": (build_vid, [f"--input_dir={root / 'vid'}", "--num_shards=3"]),
      "alov": (build_alov, [f"--input_dir={root / 'alov'}", "--num_shards=3"]),
      "det": (build_det, [f"--input_dir={root / 'det'}", "--num_shards=3"]),
      "crop_pairs": (build_crop_pairs, [f"--input_dir={root / 'otb_records'}", "--num_shards=2",
                                        "--crop_pairs_jitter", "--crop_pairs_seed=3"]),
      # Generators: both splits in one run; objects from a DET root with its bad inputs
      # (side inputs, a combine, a GroupByKey and rejects from three stages).
      "moving_mnist": (build_moving_mnist, ["--variant=scalable", f"--mnist_dir={inputs['mnist']}",
                                            "--num_train=4", "--num_test=2", "--train_length=5",
                                            "--test_length=9", "--num_shards=2", "--seed=7"]),
      "synthetic_det": (build_synthetic, [f"--det_dir={root / 'det'}", "--num_tracks=6",
                                          "--track_length=3", "--canvas_size=64",
                                          "--num_shards=2", "--seed=4"]),
  }


CASES = ["sequences_otb", "vid", "alov", "det", "crop_pairs", "moving_mnist", "synthetic_det"]


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_dask_output_is_byte_identical_to_the_direct_runner(case, cluster, inputs, tmp_path,
                                                            capsys):
  job, args = _cases(inputs)[case]
  direct = job.main(args + [f"--output_dir={tmp_path / 'direct'}"])
  capsys.readouterr()
  on_dask = job.main(args + [f"--output_dir={tmp_path / 'dask'}", "--runner=DaskRunner",
                             f"--dask_client_address={cluster.scheduler_address}"])
  summary = capsys.readouterr().out
  got, want = dir_bytes(tmp_path / "dask"), dir_bytes(tmp_path / "direct")
  assert sorted(got) == sorted(want)
  assert any(".tfrecord-" in n for n in got) and "dataset_info.json" in got
  assert any(n.startswith("rejected-") for n in got)
  for name in want:
    assert got[name] == want[name], f"{case}: {name} differs"
  # No metrics on Dask: the summary and the returned counts come from dataset_info.json.
  assert "from dataset_info.json" in summary
  assert on_dask["records_written"] == direct["records_written"] > 0


def test_translation_keeps_outputs_apart_runs_every_sink_and_each_element_once(cluster,
                                                                                 tmp_path):
  """Beam 2.77's own Dask translation mixes a ParDo's tagged outputs into one
  bag, computes only the last transform (so W1 below would never run) and
  recomputes a side input's upstream inside every consumer."""
  seen = tmp_path / "seen"
  seen.mkdir()

  def split(x):
    (seen / f"{x}").open("a").write("x")  # one character per time x is processed
    yield beam.pvalue.TaggedOutput("bad", x) if x % 3 == 0 else x

  def write(_, name, values):
    (tmp_path / name).write_text(",".join(map(str, sorted(values))))

  opts = runner.make_pipeline_options(
      ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"])
  with beam.Pipeline(options=opts) as p:
    parts = p | beam.Create(range(10)) | beam.ParDo(split).with_outputs("bad", main="good")
    _ = p | "T1" >> beam.Create([None]) | "W1" >> beam.Map(
        write, "good", beam.pvalue.AsList(parts.good))
    _ = p | "T2" >> beam.Create([None]) | "W2" >> beam.Map(
        write, "bad", beam.pvalue.AsList(parts.bad))
    grouped = (parts.good | beam.Map(lambda x: (x % 2, x)) | beam.GroupByKey()
               | beam.MapTuple(lambda k, v: k * 100 + sum(v)))
    _ = p | "T3" >> beam.Create([None]) | "W3" >> beam.Map(
        write, "grouped", beam.pvalue.AsList(grouped))
  assert (tmp_path / "good").read_text() == "1,2,4,5,7,8"
  assert (tmp_path / "bad").read_text() == "0,3,6,9"
  assert (tmp_path / "grouped").read_text() == f"{2 + 4 + 8},{100 + 1 + 5 + 7}"
  assert {f.name: f.read_text() for f in seen.iterdir()} == {str(x): "x" for x in range(10)}


def test_untranslated_transforms_are_errors(cluster, tmp_path):
  """Beam's runner turns a beam.io.Read (and anything it cannot translate)
  into a silent no-op; here the job fails naming the transform."""
  (tmp_path / "a.txt").write_text("line\n")
  opts = runner.make_pipeline_options(
      ["--runner=DaskRunner", f"--dask_client_address={cluster.scheduler_address}"])
  with pytest.raises(NotImplementedError, match="ReadLines"):
    with beam.Pipeline(options=opts) as p:
      _ = p | "ReadLines" >> beam.io.ReadFromText(str(tmp_path / "a.txt"))


def _otb_tree(root, sequences=12, frames=30):
  for s in range(sequences):
    for i in range(frames):
      trees.write_jpeg(os.path.join(root, f"Seq{s:02d}", "img", f"{i + 1:04d}.jpg"), 120, 160,
                       s * 1000 + i)
    rows = [f"{10 + i % 7},{12 + i % 5},40,30" for i in range(frames)]
    trees.write(os.path.join(root, f"Seq{s:02d}", "groundtruth_rect.txt"), "\n".join(rows) + "\n")


@pytest.mark.slow
def test_a_worker_killed_mid_job_leaves_complete_output_or_a_loud_failure(cluster, tmp_path):
  """SIGKILL one worker process once the shard writers have started: the
  scheduler re-runs its tasks elsewhere (the nanny restarts it) and the job
  ends with the DirectRunner's bytes, or it raises with no partial shard
  under a final name. (Runs after the tests above: the module's cluster gets
  a fresh worker.)"""
  _otb_tree(str(tmp_path / "otb"))
  args = [f"--input_dir={tmp_path / 'otb'}", "--sequence_kind=otb", "--num_shards=4"]
  build_sequences.main(args + [f"--output_dir={tmp_path / 'direct'}"])
  out = tmp_path / "dask"
  killed = []
  with distributed.Client(cluster, set_as_default=False) as monitor:
    pids = monitor.run(os.getpid)

    def kill_when_writing():
      deadline = time.time() + 120
      while time.time() < deadline and not killed:
        if out.exists() and any(".tmp-" in n for n in os.listdir(out)):
          busy = [a for a, keys in monitor.processing().items() if keys and a in pids]
          victim = (busy or sorted(pids))[0]
          os.kill(pids[victim], signal.SIGKILL)
          killed.append((victim, sorted(os.listdir(out))))
          return
        time.sleep(0.002)

    watcher = threading.Thread(target=kill_when_writing, daemon=True)
    watcher.start()
    error = None
    try:
      build_sequences.main(args + [f"--output_dir={out}", "--runner=DaskRunner",
                                   f"--dask_client_address={cluster.scheduler_address}"])
    except Exception as e:  # pylint: disable=broad-except
      error = e
    watcher.join(timeout=5)
  assert killed, "the job ended before a shard writer started: no worker was killed"
  victim, listing = killed[0]
  assert not any(".tfrecord-" in n and ".tmp-" not in n for n in listing), listing
  finals = shards.record_files(str(out), "otb", "train")
  if error is None:
    assert dir_bytes(out) == dir_bytes(tmp_path / "direct")
  else:
    logging.warning("the job failed after the kill (%s): %r", victim, error)
    # Nothing half-written under a final name: a truncated TFRecord file
    # raises DataLossError when read to the end.
    assert not finals or len(finals) == 4
    for path in finals:
      list(tf.data.TFRecordDataset(path))


def test_no_job_tries_to_download_prism(inputs, tmp_path, caplog, capfd):
  """Beam's DirectRunner tries the Prism runner first (a download, which
  offline logs a failure and a fallback); the local default here is the
  FnApiRunner, chosen directly, with or without --runner=DirectRunner."""
  caplog.set_level(logging.INFO)
  seq = inputs["seq"]
  args = [f"--input_dir={seq['otb'][0]}", "--sequence_kind=otb", "--num_shards=1"]
  for i, extra in enumerate([[], ["--runner=DirectRunner"]]):
    counters = build_sequences.main(args + [f"--output_dir={tmp_path / str(i)}"] + extra)
    assert counters["records_written"] == 2
  printed = capfd.readouterr()
  text = (printed.out + printed.err + caplog.text).lower()
  assert "prism" not in text and "falling back" not in text
  assert runner.resolve_runner([]) == runner.LOCAL_RUNNER
  assert runner.resolve_runner(["--runner=DirectRunner"]) == runner.LOCAL_RUNNER
  # Asked for by name, Prism goes to Beam as given (with --prism_location for a local binary).
  assert runner.resolve_runner(["--runner", "PrismRunner", "--prism_location", "/opt/prism"]) \
      == "PrismRunner"
