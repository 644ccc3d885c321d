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
#   SEED=1 OUT=runs/re3_nano_s1 STEPS=ship bash train/experiments/re3_nano.sh  # re3_nano
#
# The default model (re3_nano_head: NanoTrack's head inside Re3) is the same
# recipe with its config:
#   export CONFIG=configs/experiments/re3_nano_head.yaml
#   SEED=1 OUT=runs/re3_nanohead_s1 bash train/experiments/re3_nano.sh
#   SEED=1 OUT=runs/re3_nanohead_s1 SHIP_DIR=model/pretrained/re3_nano_head STEPS=ship \
#     bash train/experiments/re3_nano.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
export CONFIG=${CONFIG:-configs/experiments/re3_nano.yaml}
export VAL_MOD=${VAL_MOD:-4}
export OUT=${OUT:-runs/re3_nano}
export DATA=${DATA:-runs/data_nano}
# "ship" writes model/pretrained/re3_nano: loading it by name runs its LiteRT
# fp16 step (chosen on the validation clips), and the weights derived from
# NanoTrack carry its Apache-2.0 licence as NOTICE.
export SHIP_DIR=${SHIP_DIR:-model/pretrained/re3_nano}
export SHIP_ARGS=${SHIP_ARGS:-"--runtime litert-fp16 --notice ../shared/models/peers/LICENSE-Apache-2.0.txt"}
exec bash train/experiments/re3_pretrained.sh
