#!/usr/bin/env bash
# Re3 on NanoTrack v2's backbone with a template memory: the recipe of
# re3_pretrained.sh (same phases, data jobs, resume) with
#   * configs/experiments/re3_nano.yaml,
#   * 13 validation clips from 6 sources (sorted clip names, index % 4 == 2,
#     of the 51 in ../shared/data/tracking/train/clips), the other 38 train,
#   * NanoTrack v2 and VitTrack beside the OpenCV baselines where available.
#
#   SEED=0 OUT=runs/re3_nano_s0 bash train/experiments/re3_nano.sh
#   SEED=1 OUT=runs/re3_nano_s1 STEPS="train export val" bash train/experiments/re3_nano.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONFIG=${CONFIG:-configs/experiments/re3_nano.yaml}
export VAL_MOD=${VAL_MOD:-4}
export OUT=${OUT:-runs/re3_nano}
export DATA=${DATA:-runs/data_nano}
exec bash train/experiments/re3_pretrained.sh
