"""Prints a model's layer table; the last line is the total parameter count.

  python -m model.summary --config configs/re3_paper.yaml
  python -m model.summary --config configs/re3_small.yaml --set model.lstm_units=64

Reads only the `task` and `model` sections of the experiment YAML, builds the
model (Re3Net or RLAgent) with fresh weights and lists every layer with its
weight shapes and parameter count. The final line is a bare number so scripts
can read it (`... | tail -1`). For Re3 the per-block count derived from the
config's shapes alone (model.re3.count_parameters) is checked against the
built model.
"""

from __future__ import annotations

from typing import List

from configs import cli as cli_errors, quiet

quiet.setup()

from absl import app, flags  # noqa: E402

from configs.model import load_model_config  # noqa: E402
from model.re3 import build_re3, count_parameters, features_per_crop  # noqa: E402
from model.rl_agent import build_rl_agent  # noqa: E402


def define_flags(flag_values=flags.FLAGS):
  """Defined on demand (by __main__, or a test's own FlagValues) so importing
  this module beside other entry points never clashes."""
  flags.DEFINE_string("config", None, "Experiment YAML with `task` and `model` sections.",
                      flag_values=flag_values)
  flags.DEFINE_multi_string("set", [], "Override a model field, e.g. --set model.fc6_units=512 "
                            "or --set model.conv_filters[0]=48 (configs.base.apply_overrides).",
                            flag_values=flag_values)
  cli_errors.define_verbose_flag(flag_values)


def layer_table(model) -> List[str]:
  """Rows 'name  class  weight shapes  params' for each layer of `model`."""
  rows = [("layer", "type", "weights", "params")]
  for layer in model.layers:
    shapes = ", ".join("x".join(str(d) for d in w.shape) or "scalar" for w in layer.weights) or "-"
    rows.append((layer.name, type(layer).__name__, shapes, f"{layer.count_params():,}"))
  widths = [max(len(r[i]) for r in rows) for i in range(4)]
  lines = []
  for n, r in enumerate(rows):
    lines.append("  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]), r[2].ljust(widths[2]),
                            r[3].rjust(widths[3])]))
    if n == 0:
      lines.append("-" * len(lines[0]))
  return lines


def summarize(config_path: str, overrides=()) -> List[str]:
  """Builds the model of `config_path`; returns the table lines, count last."""
  task, cfg = load_model_config(config_path, overrides)
  lines = [f"config: {config_path}", f"task: {task}"]
  if task == "re3":
    model = build_re3(cfg)
    expected = count_parameters(cfg)
    lines.append(f"features per crop: {features_per_crop(cfg):,}; per pair: {2 * features_per_crop(cfg):,}; "
                 f"peephole: {cfg.peephole}")
    lines.append("blocks: " + ", ".join(f"{k} {v:,}" for k, v in expected.items() if k != "total"))
  else:
    model = build_rl_agent(cfg)
    expected = None
    lines.append(f"feature map: {cfg.feature_shape()}; output_dim: {cfg.output_dim}; sigma: {cfg.sigma}")
  lines.extend(layer_table(model))
  total = model.count_params()
  if expected is not None and expected["total"] != total:
    raise RuntimeError(f"built model has {total} parameters, the config's shapes say {expected['total']}")
  trainable = sum(int(w.shape.num_elements()) for w in model.trainable_weights)
  lines.append(f"total parameters: {total:,} (trainable: {trainable:,})")
  lines.append(str(total))
  return lines


def main(argv, flag_values=None):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  f = flag_values or flags.FLAGS
  if not f.config:
    raise app.UsageError("--config is required")
  for line in summarize(f.config, f.set):
    print(line)


if __name__ == "__main__":
  define_flags()
  app.run(main, flags_parser=cli_errors.flags_parser(__doc__))
