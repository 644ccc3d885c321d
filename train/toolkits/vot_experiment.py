"""The VOT toolkit's supervised (reset) experiment, runnable with vot-toolkit 0.9.0.

vot-toolkit 0.9.0's `supervised` experiment cannot run a single-object tracker:
it reads `runtime.update(frame)` as (one object, time) while every runtime
returns (a list of objects, time) (AttributeError "'list' object has no
attribute 'properties'"), and the TraX runtime refuses `update` without an
(empty) list of new objects. This subclass runs the same protocol, frame for
frame (initialize on frame 0; a frame whose overlap with the ground truth is
<= failure_overlap is a failure; re-initialize `skip_initialize` frames later;
skip_tags; repetitions with the toolkit's early stop for deterministic
trackers), handing the runtime one-element lists and taking the single object
of its answer. Analyses that require a SupervisedExperiment accept it.

The workspace writer (train/toolkits/vot_workspace.py) names it in stack.yaml:
`type: train.toolkits.vot_experiment.SupervisedExperiment`.
"""

from __future__ import annotations

from typing import Callable, Optional

from vot.experiment.multirun import SupervisedExperiment as _ToolkitSupervised
from vot.region import Special, calculate_overlap
from vot.tracker import ObjectStatus, OnlineTrackerRuntime, Trajectory

CLASS_PATH = "train.toolkits.vot_experiment.SupervisedExperiment"


def _single(result):
  """(ObjectStatus, time) from a runtime answer (objects may be a list)."""
  objects, elapsed = result
  if isinstance(objects, (list, tuple)) and not isinstance(objects, ObjectStatus):
    if len(objects) != 1:
      raise ValueError(f"single-object experiment got {len(objects)} objects from the tracker")
    objects = objects[0]
  return objects, elapsed


class SupervisedExperiment(_ToolkitSupervised):
  """vot's SupervisedExperiment with the runtime calls of a single-object tracker."""

  def execute(self, tracker, sequence, force: bool = False,
              callback: Optional[Callable] = None):
    if len(sequence.objects()) != 1:
      raise ValueError("SupervisedExperiment only works on single-target sequences.")
    results = self.results(tracker, sequence)
    with self._get_runtime(tracker, sequence) as runtime:
      if not isinstance(runtime, OnlineTrackerRuntime):
        raise ValueError("SupervisedExperiment requires an online tracker runtime.")
      for i in range(1, self.repetitions + 1):
        name = f"{sequence.name}_{i:03d}"
        if Trajectory.exists(results, name) and not force:
          continue
        if self._can_stop(tracker, sequence):
          return
        trajectory = Trajectory(len(sequence))
        frame = 0
        while frame < len(sequence):
          _, elapsed = _single(runtime.initialize(
              sequence.frame(frame), [self._get_initialization(sequence, frame)]))
          trajectory.set(frame, Special(Trajectory.INITIALIZATION), {"time": elapsed})
          frame += 1
          while frame < len(sequence):
            target, elapsed = _single(runtime.update(sequence.frame(frame), []))
            properties = dict(target.properties)
            properties["time"] = elapsed
            overlap = calculate_overlap(target.region, sequence.groundtruth(frame), sequence.size)
            if overlap <= self.failure_overlap:
              trajectory.set(frame, Special(self.FAILURE), properties)
              frame += self.skip_initialize
              if self.skip_tags:
                while frame < len(sequence):
                  if not [t for t in sequence.tags(frame) if t in self.skip_tags]:
                    break
                  frame += 1
              break
            trajectory.set(frame, target.region, properties)
            frame += 1
        if callback:
          callback(i / self.repetitions)
        trajectory.write(results, name)
