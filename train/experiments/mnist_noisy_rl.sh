#!/usr/bin/env bash
# The RL tracker paper's agent on the hardest row of its Table 1 (scalable
# digit, 500 noise dots, a distractor digit), with a validation set:
#
#   bash train/experiments/mnist_noisy_rl.sh                  # every phase, every run
#   RUNS="rl_paper rl_aug" STEPS="train curves" bash train/experiments/mnist_noisy_rl.sh
#
# Phases ($STEPS): data | train | test | table | curves
# 1. data: pipelines.build_moving_mnist --variant noisy, seed 0: 500 training
#    sequences x 20 frames, 100 test sequences x 100 frames (MNIST test
#    digits) as in mnist_table1.sh, plus `val`: 100 sequences x 100 frames made
#    from the last 500 of the 5,000 MNIST training digits, which the training
#    sequences then never use (--num_val 100 --val_digits 500). Every choice
#    below was made on `val`; `test` is scored once per final model.
#    rl_5000 uses a second dataset with 5,000 training sequences (same val and
#    test sequences).
# 2. train: train.train --config configs/drlt_mnist_noisy.yaml: the paper's
#    network (CNN 8@5x5, 16@5x5, ReLU LSTM 256, 256-unit ReLU layer), Gaussian
#    policy sigma = 1, Algorithm 1 with T = 10, N = 5, pure REINFORCE
#    (trainer.rl.objective=reinforce) in every run; batches of 16 videos, Adam
#    at $LR annealed linearly to 0 over the run's updates (the paper: 1e-5 over
#    up to 2,000 epochs; not affordable on 2 CPU cores). Validation on `val`
#    every $VAL_EVERY updates (mean IoU, centre error, its first and last 10
#    frames) into train_log.jsonl. A finished run is not retrained (train.train
#    resumes from its last checkpoint and stops at train_steps).
#      rl_paper   the paper's recipe, $UPDATES updates
#      rl_aug     + whole-video symmetries: mirrored (p 0.5), 0-3 quarter
#                 turns, played backwards (p 0.5) (data.mirror_prob,
#                 data.rotate90, data.reverse_prob): 16 versions of each video
#                 (the turns from three coin flips: not all equally often)
#      rl_aug_step  rl_aug with R^i_t = r^i_t in eq. 8 (trainer.rl.return_mode=step):
#                 Algorithm 1 line 10's baseline b_t is the episodes' mean of
#                 the step reward r^i_t; an action moves no later frame, so the
#                 rewards after t add only variance to its return
#      rl_paper_step  rl_paper with those step returns (no augmentation)
#      rl_5000    the paper's recipe on 5,000 training sequences (not the
#                 paper's data size: a labelled variant)
#      rl_curriculum  a curriculum from the scalable setting: the paper's recipe
#                 first on 500 scalable sequences (no noise, no distractor;
#                 the same held-out val digits) -> $OUT/rl_scalable, then on
#                 the 500 noisy sequences from those weights
#                 (trainer.init_model), $UPDATES updates each
# 3. test: train.evaluate --protocol ope on the 100 test sequences, the agent
#    sees frames only (no first box), as mnist_table1.sh.
# 4. table: train.experiments.report mnist (Table 1 rows of these runs, with
#    the centre error of frames 0-9 and 90-99).
# 5. curves: train.experiments.rl_curves: reward and validation IoU per update
#    -> $CURVES, and the last validation of every run.
# Outputs: $OUT/{run}/ (checkpoints, config.yaml, train_log.jsonl),
# $OUT/eval/{run}_noisy/, $OUT/table.md, $OUT/table.json, $OUT/validation.md.
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-runs/mnist_noisy_rl}
DATA=${DATA:-runs/data_rl}
MNIST=${MNIST:-../shared/data/mnist}
STEPS=${STEPS:-"data train test table curves"}
RUNS=${RUNS:-"rl_paper rl_aug rl_5000"}
UPDATES=${UPDATES:-3000}
LR=${LR:-1e-3}
BATCH=${BATCH:-16}
VAL_EVERY=${VAL_EVERY:-1000}
SEED=${SEED:-0}
DISTRACTOR=${DISTRACTOR:-static}
CURVES=${CURVES:-docs/images/rl_noisy_curves.png}

log() { echo "[$(date +%H:%M:%S)] $*"; }
has() { ls "$1"/moving_mnist_noisy-"$2".tfrecord-* >/dev/null 2>&1; }
mkdir -p "$OUT/eval"

data_dir() {  # run -> its dataset
  case "$1" in
    rl_5000) echo "$DATA/mnist_noisy_5000" ;;
    rl_scalable) echo "$DATA/mnist_scalable" ;;
    *) echo "$DATA/mnist_noisy" ;;
  esac
}

build_data() {  # variant num_train dir
  if ls "$3"/moving_mnist_"$1"-val.tfrecord-* >/dev/null 2>&1; then log "data: reusing $3"; return; fi
  log "data: python -m pipelines.build_moving_mnist --variant $1 --num_train $2 --num_val 100 ... -> $3"
  python -m pipelines.build_moving_mnist --variant "$1" --mnist_dir "$MNIST" --output_dir "$3" \
    --seed "$SEED" --num_train "$2" --num_test 100 --num_val 100 --val_digits 500 \
    --train_length 20 --test_length 100 --val_length 100 --num_shards 4 --preview 4 \
    --mnist_distractor_motion "$DISTRACTOR" --runner DirectRunner
}

phase_data() {
  build_data noisy 500 "$DATA/mnist_noisy"
  if [[ " $RUNS " == *" rl_5000 "* ]]; then build_data noisy 5000 "$DATA/mnist_noisy_5000"; fi
  if [[ " $RUNS " == *" rl_curriculum "* ]]; then build_data scalable 500 "$DATA/mnist_scalable"; fi
}

run_sets() {  # run -> its --set flags beyond the common ones
  case "$1" in
    rl_paper|rl_5000|rl_scalable) ;;
    rl_aug) echo "--set data.mirror_prob=0.5 --set data.rotate90=true --set data.reverse_prob=0.5" ;;
    rl_aug_step) echo "$(run_sets rl_aug) --set trainer.rl.return_mode=step" ;;
    rl_paper_step) echo "--set trainer.rl.return_mode=step" ;;
    rl_curriculum) echo "--set trainer.init_model=$OUT/rl_scalable" ;;
    *) echo "unknown run $1 (rl_paper | rl_paper_step | rl_aug | rl_aug_step | rl_5000 | rl_curriculum)" >&2; return 2 ;;
  esac
}

train_one() {  # run variant
  local run=$1 variant=$2 d sets start
  sets=$(run_sets "$run")
  d=$(data_dir "$run")
  start=$(date +%s)
  log "train $run: python -m train.train --config configs/drlt_mnist_$variant.yaml --model_dir $OUT/$run $sets ($UPDATES updates)"
  # shellcheck disable=SC2086
  python -m train.train --config "configs/drlt_mnist_$variant.yaml" --model_dir "$OUT/$run" \
      --set "data.train_dir=$d" --set "data.val_dir=$d" --set data.val_split=val \
      --set "trainer.train_steps=$UPDATES" --set "trainer.rl.batch_size=$BATCH" \
      --set "trainer.learning_rate=$LR" --set trainer.rl.objective=reinforce \
      --set "trainer.val_every=$VAL_EVERY" --set trainer.checkpoint_every=500 \
      --set trainer.log_every=250 --set "runtime.seed=$SEED" $sets
  log "train $run: $(( $(date +%s) - start )) s"
}

phase_train() {
  local run
  for run in $RUNS; do
    [ "$run" = rl_curriculum ] && train_one rl_scalable scalable
    train_one "$run" noisy
  done
}

phase_test() {
  local run
  for run in $RUNS; do
    log "test $run: python -m train.evaluate --model $OUT/$run --dataset mnist:$(data_dir "$run") --split test --protocol ope --trackers rl_agent"
    python -m train.evaluate --model "$OUT/$run" --dataset "mnist:$(data_dir "$run")" \
      --split test --protocol ope --trackers rl_agent --output_dir "$OUT/eval/${run}_noisy"
  done
}

phase_table() {
  python -m train.experiments.report mnist --root "$OUT/eval" --json "$OUT/table.json" \
    | tee "$OUT/table.md"
}

phase_curves() {
  local run args=()
  for run in $RUNS; do args+=(--run "$run=$OUT/$run"); done
  python -m train.experiments.rl_curves "${args[@]}" --output "$CURVES" \
    --title "RL agent, noisy moving MNIST (pure REINFORCE)" --table "$OUT/validation.md"
}

for phase in $STEPS; do
  case "$phase" in
    data) phase_data ;; train) phase_train ;; test) phase_test ;;
    table) phase_table ;; curves) phase_curves ;;
    *) echo "unknown phase $phase (data | train | test | table | curves)" >&2; exit 2 ;;
  esac
done
