"""The dataset jobs on a Dask cluster: `--runner=DaskRunner`.

  python -m pipelines.build_vid ... --runner=DaskRunner --dask_workers=8       # local cluster
  python -m pipelines.build_vid ... --runner=DaskRunner \\
      --dask_client_address=tcp://scheduler:8786                              # existing cluster

Beam's own Dask runner (apache_beam.runners.dask, the `dask` extra) translates
Create, ParDo, GroupByKey and Flatten into dask.bag operations and runs them on
a `dask.distributed` scheduler. As shipped (Beam 2.77) it cannot run these
jobs correctly, so this module keeps its overrides and option flags and
replaces the graph translation:

* tagged outputs: Beam's ParDo translation puts every output of a multi-output
  ParDo into one bag, so a consumer of the main output also receives the
  rejects. Here each output PCollection gets its own bag (the bundle's
  outputs are (tag, value) pairs, filtered per tag);
* side inputs: Beam's translation computes a side input inside the consuming
  task (a nested compute, which runs the side input's whole upstream again,
  e.g. every shard writer once more per side input). Here a side input is a
  dependency of the consuming tasks, computed once in the same graph;
* sinks: Beam computes only the bag of the last transform applied, so a
  branch the last transform does not depend on (the second split's writer)
  never runs. Here every PCollection nothing consumes is computed, all in one
  graph, and only element counts travel back to the client;
* partitions: Beam's Create puts 128 elements in a partition, so a job over
  fewer than 128 videos runs in one task on one worker, and Reshuffle is a
  no-op. Here a Create is cut into up to --dask_npartitions partitions
  (default: 4 per worker thread of the cluster; --dask_partition_size N
  instead puts N elements in each), and a Reshuffle splits its
  input into that many partitions when it has fewer (a FlatMap that fans out,
  e.g. annotation folders -> files, then spreads over the workers);
* `beam.io.Read` sources are not translated (Beam's runner replaces them with
  a no-op, silently producing nothing): they are an error here. The jobs read
  their files inside a ParDo over a created list of paths;
* a transform with no translation (or a GroupByKey outside the global
  window) is an error naming it, not a silent no-op.

Memory: a task holds its partition's elements and outputs at once (Dask bag
partitions are lists). The track jobs shuffle only small SegmentTasks and
build records one at a time in the shard writer, so their workers stay flat
as the input grows; the jobs that make records before the shuffle
(build_det, build_synthetic, build_moving_mnist, build_crop_pairs) hold about
1/npartitions of their records in a task: raise --dask_npartitions for big
inputs.

Counters: the runner has no metrics (`metrics()` raises NotImplementedError,
as in Beam), so pipelines.runner reports a job's summary from what it wrote.

Without --dask_client_address / --dask_scheduler_file the runner starts a
`distributed.LocalCluster` of --dask_workers worker processes (one thread
each) and closes it when the job ends. On an existing cluster every worker
needs this package (and its dependencies) installed, and the input and output
paths must be readable/writable from the workers (a shared or gs:// path).

Worker failures: the scheduler re-runs the tasks of a lost worker elsewhere
(a task whose workers die `distributed.scheduler.allowed-failures` times
fails the job with KilledWorker). Shard writers write temporary names that a
re-run overwrites, and only the finalize step renames them, so a re-run task
leaves no partial shard under a final name.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import dask
import dask.bag as db
import distributed
from dask.bag.core import groupby_tasks
from dask.base import tokenize
from apache_beam.pipeline import PipelineVisitor
from apache_beam.runners.common import (DoFnContext, DoFnInvoker, DoFnSignature, Receiver,
                                        _OutputHandler)
from apache_beam.runners.dask import dask_runner as beam_dask_runner
from apache_beam.runners.dask import overrides
from apache_beam.runners.dask.transform_evaluator import defenestrate, get_windowed_value
from apache_beam.runners.runner import PipelineResult, PipelineState
from apache_beam.transforms.sideinputs import SideInputMap
from apache_beam.transforms.window import GlobalWindows

from pipelines.options import DaskClusterOptions, JobConfigError

DaskOptions = beam_dask_runner.DaskOptions

_LOGGER = logging.getLogger(__name__)

# Partitions per worker thread when --dask_npartitions is not given: enough
# for the scheduler to balance uneven elements (one long video next to short
# ones), few enough that per-task overhead stays small.
PARTITIONS_PER_THREAD = 4


# ---------------------------------------------------------------------------
# Task functions (run on the workers)
# ---------------------------------------------------------------------------


class _TagReceiver(Receiver):
  """Collects one output tag's values as (tag, value) pairs."""

  def __init__(self, tag, out: list):
    self._tag = tag
    self._out = out

  def receive(self, windowed_value):
    self._out.append((self._tag, windowed_value.value))


class _Receivers(dict):
  """tag -> its _TagReceiver, made on first use (Beam asks by tag)."""

  def __init__(self, out: list):
    super().__init__()
    self._out = out

  def __missing__(self, tag):
    receiver = self[tag] = _TagReceiver(tag, self._out)
    return receiver


class _WindowedValues:
  """A side input's materialized values as the windowed values SideInputMap reads."""

  def __init__(self, values, window_fn):
    self._values = values
    self._window_fn = window_fn

  def __iter__(self):
    for v in self._values:
      yield get_windowed_value(v, self._window_fn)


def _concat(parts) -> list:
  return [v for part in parts for v in part]


def _run_bundle(items, fn, label: str, args, kwargs, window_fn, side_specs, *side_values):
  """One partition through a DoFn: setup, start_bundle, process each item,
  finish_bundle, teardown. Returns the outputs as (tag, value) pairs, tag
  None for the main output."""
  out: List[Tuple[Any, Any]] = []
  receivers = _Receivers(out)
  handler = _OutputHandler(
      window_fn=window_fn, main_receivers=receivers[None], tagged_receivers=receivers,
      per_element_output_counter=None, output_batch_converter=None,
      process_yields_batches=False, process_batch_yields_elements=False)
  side_inputs = [SideInputMap(view_class, view_options, _WindowedValues(values, mapping_fn))
                 for (view_class, view_options, mapping_fn), values in zip(side_specs, side_values)]
  invoker = DoFnInvoker.create_invoker(
      DoFnSignature(fn), handler, context=DoFnContext(label, state=None),
      side_inputs=side_inputs, input_args=list(args), input_kwargs=kwargs,
      user_state_context=None, bundle_finalizer_param=beam.DoFn.BundleFinalizerParam())
  invoker.invoke_setup()
  invoker.invoke_start_bundle()
  for item in items:
    invoker.invoke_process(get_windowed_value(item, window_fn))
  invoker.invoke_finish_bundle()
  invoker.invoke_teardown()
  return out


class _TagIs:
  def __init__(self, tag):
    self._tag = tag

  def __call__(self, pair) -> bool:
    return pair[0] == self._tag


def _value(pair):
  return pair[1]


def _group_key(kv):
  return kv[0]


def _key_hash(key) -> int:
  """The shuffle's partition hash: a small non-negative int key is itself, so
  the shard writers' keys 0..N-1 land in N different partitions (dask's
  default hash spreads them at random, leaving some workers two shards and
  others none); any other key as dask hashes it."""
  if isinstance(key, int) and not isinstance(key, bool) and key >= 0:
    return key
  return int(tokenize(key), 16)


def _grouped(kv):
  """(key, [(key, WindowedValue)]) from the shuffle -> (key, [values])."""
  key, items = kv
  return key, [defenestrate(item[1]) for item in items]


def _count(partition) -> List[int]:
  return [sum(1 for _ in partition)]


# ---------------------------------------------------------------------------
# Translation
# ---------------------------------------------------------------------------


class _Translator(PipelineVisitor):
  """Beam leaf transforms -> dask bags, one bag per PCollection."""

  def __init__(self, npartitions: int, partition_size: Optional[int] = None):
    self.bags: Dict[Any, db.Bag] = {}
    self.consumed = set()
    self._npartitions = max(1, int(npartitions))
    self._partition_size = partition_size

  def _input(self, node):
    pcolls = list(node.main_inputs.values())
    for pc in pcolls:
      self.consumed.add(pc)
    return [self.bags[pc] for pc in pcolls]

  def _set_output(self, node, bag) -> None:
    (pcoll,) = node.outputs.values()
    self.bags[pcoll] = bag

  def visit_transform(self, node) -> None:
    transform = node.transform
    kind = type(transform)
    if kind is overrides._Create:  # pylint: disable=protected-access
      values = list(transform.values)
      if self._partition_size:
        bag = db.from_sequence(values, partition_size=self._partition_size)
      else:
        bag = db.from_sequence(values, npartitions=max(1, min(len(values), self._npartitions)))
      self._set_output(node, bag)
    elif kind is beam.ParDo:
      self._pardo(node)
    elif kind is overrides._GroupByKeyOnly:  # pylint: disable=protected-access
      (bag,) = self._input(node)
      self._set_output(node, groupby_tasks(bag, _group_key, hash=_key_hash).map(_grouped))
    elif kind is overrides._GroupAlsoByWindow:  # pylint: disable=protected-access
      windowfn = next(iter(node.main_inputs.values())).windowing.windowfn
      if not isinstance(windowfn, GlobalWindows):
        raise NotImplementedError(
            f"{node.full_label}: the Dask runner groups in the global window only, "
            f"not {type(windowfn).__name__}")
      (bag,) = self._input(node)  # the grouping by key is done
      self._set_output(node, bag)
    elif kind is overrides._Flatten:  # pylint: disable=protected-access
      bags = self._input(node)
      self._set_output(node, bags[0] if len(bags) == 1 else db.concat(bags))
    elif kind is overrides._Reshuffle:  # pylint: disable=protected-access
      (bag,) = self._input(node)
      if bag.npartitions < self._npartitions:
        bag = bag.repartition(npartitions=self._npartitions)
      self._set_output(node, bag)
    elif kind is overrides._Read:  # pylint: disable=protected-access
      raise NotImplementedError(
          f"{node.full_label}: beam.io.Read sources are not translated by the Dask runner; "
          "read the files inside a ParDo over a created list of paths")
    else:
      raise NotImplementedError(
          f"{node.full_label}: the Dask runner has no translation for {kind.__name__}")

  def _pardo(self, node) -> None:
    transform = node.transform
    (bag,) = self._input(node)
    main_input = next(iter(node.main_inputs.values()))
    window_fn = main_input.windowing.windowfn
    side_specs, side_values = [], []
    for side in node.side_inputs:
      self.consumed.add(side.pvalue)
      side_bag = self.bags[side.pvalue]
      side_specs.append((type(side), side._view_options(),  # pylint: disable=protected-access
                         side._window_mapping_fn))  # pylint: disable=protected-access
      side_values.append(dask.delayed(_concat, pure=True)(
          side_bag.to_delayed(optimize_graph=False)))
    args, kwargs = transform.raw_side_inputs
    pairs = bag.map_partitions(_run_bundle, transform.fn, node.full_label, list(args),
                               dict(kwargs), window_fn, side_specs, *side_values,
                               token=_token(node.full_label))
    for tag, pcoll in node.outputs.items():
      self.bags[pcoll] = pairs.filter(_TagIs(tag)).map(_value)

  def sinks(self) -> List[db.Bag]:
    """Bags of the PCollections nothing consumes (their producers' effects)."""
    return [bag for pcoll, bag in self.bags.items() if pcoll not in self.consumed]


def _token(label: str) -> str:
  return "".join(ch if ch.isalnum() else "_" for ch in label)[-60:] or "pardo"


# ---------------------------------------------------------------------------
# Runner
# ---------------------------------------------------------------------------


def _client_kwargs(options) -> dict:
  dask_opts = options.view_as(DaskOptions)
  kwargs = {}
  if dask_opts.address:
    kwargs["address"] = dask_opts.address
  if dask_opts.scheduler_file:
    kwargs["scheduler_file"] = dask_opts.scheduler_file
  if isinstance(dask_opts.timeout, int):
    kwargs["timeout"] = dask_opts.timeout
  return kwargs


def start_local_cluster(workers: int) -> distributed.LocalCluster:
  """A LocalCluster of `workers` processes with one thread each (its HTTP
  endpoint on a free port, so that several clusters on a host do not clash).
  The scheduler runs in this process and the workers inherit its environment:
  their per-task INFO lines are silenced unless dask's logging config says otherwise."""
  logging.getLogger("distributed").setLevel(logging.WARNING)
  os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
  return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=":0")


def cluster_threads(client: distributed.Client) -> int:
  workers = client.scheduler_info(n_workers=-1).get("workers", {})
  return sum(int(w.get("nthreads", 1)) for w in workers.values()) or 1


class DaskRunnerResult(PipelineResult):
  """Waits for the sinks; closes the client and the local cluster it started."""

  def __init__(self, client: distributed.Client, futures: Sequence[distributed.Future],
               cluster: Optional[distributed.LocalCluster]):
    super().__init__(PipelineState.RUNNING)
    self._client = client
    self._futures = list(futures)
    self._cluster = cluster

  def wait_until_finish(self, duration=None):
    if PipelineState.is_terminal(self._state):
      return self._state
    try:
      if duration is not None:
        raise NotImplementedError("the Dask runner waits for the whole job (no duration)")
      self._client.gather(self._futures)  # raises a failed task's error here
      self._state = PipelineState.DONE
    except BaseException:
      self._state = PipelineState.FAILED
      raise
    finally:
      self._close()
    return self._state

  def _close(self) -> None:
    try:
      self._client.close()
    finally:
      if self._cluster is not None:
        self._cluster.close()
        self._cluster = None

  def cancel(self):
    self._client.cancel(self._futures)
    self._state = PipelineState.CANCELLED
    self._close()
    return self._state

  def metrics(self):
    raise NotImplementedError("the Dask runner does not collect Beam metrics")


class DaskRunner(beam_dask_runner.DaskRunner):
  """Runs a pipeline on a dask.distributed cluster (see the module doc)."""

  def run_pipeline(self, pipeline, options):
    kwargs = _client_kwargs(options)
    cluster = None
    if "address" not in kwargs and "scheduler_file" not in kwargs:
      workers = options.view_as(DaskClusterOptions).dask_workers or os.cpu_count() or 1
      if workers < 1:
        raise JobConfigError(f"--dask_workers must be >= 1, got {workers}")
      cluster = start_local_cluster(workers)
      kwargs["address"] = cluster
    try:
      client = distributed.Client(set_as_default=False, **kwargs)
    except BaseException:
      if cluster is not None:
        cluster.close()
      raise
    try:
      dask_opts = options.view_as(DaskOptions)
      npartitions = dask_opts.npartitions or PARTITIONS_PER_THREAD * cluster_threads(client)
      pipeline.replace_all(overrides.dask_overrides())
      translator = _Translator(npartitions, dask_opts.partition_size)
      pipeline.visit(translator)
      sinks = [bag.map_partitions(_count) for bag in translator.sinks()]
      futures = client.compute(sinks)
    except BaseException:
      client.close()
      if cluster is not None:
        cluster.close()
      raise
    _LOGGER.info("running on %s (%d partitions per Create)", client, npartitions)
    return DaskRunnerResult(client, futures, cluster)
