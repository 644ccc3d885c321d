#!/usr/bin/env bash
# The RL tracker paper's Table 1 on moving MNIST, rerun end to end:
#
#   bash train/experiments/mnist_table1.sh            # everything (data, 9 trainings, 9 evaluations, table)
#   VARIANTS=fixed RUNS=re3 bash train/experiments/mnist_table1.sh   # one cell
#
# 1. data: pipelines.build_moving_mnist, the three settings, 500 training
#    sequences x 20 frames (MNIST training digits) and 100 test sequences x
#    100 frames (MNIST test digits), seed 0, into $DATA/mnist_{variant}.
# 2. training, per setting:
#    rl_reinforce  the paper's agent and Algorithm 1: pure REINFORCE, T = 10,
#                  N = 5 episodes, sigma = 1, linear learning-rate annealing
#                  to 0 (configs/drlt_mnist_{variant}.yaml). CPU budget instead
#                  of the paper's 2000 epochs at lr 1e-5: $RL_STEPS updates of
#                  16 videos at lr 1e-3 (Adam).
#    rl_mixed      the same agent and budget, trained with the training
#                  system's stronger option: REINFORCE plus the differentiable
#                  eq. 4 loss of the mean action (trainer.rl.objective=mixed).
#    rl_mixed_tanh (not in the default RUNS) rl_mixed with a tanh LSTM instead of
#                  the paper's ReLU LSTM, whose state grows without bound on
#                  sequences much longer than the 20 training frames.
#    rl_mixed_aug  (not in the default RUNS) rl_mixed_tanh with whole videos
#                  mirrored left-right with p = 0.5 (data.mirror_prob), against
#                  memorising the 500 training targets.
#    re3           a CPU-sized Re3 (configs/experiments/re3_mnist.yaml) on the
#                  same training sequences, with the unroll curriculum.
#    A finished run is not retrained (train.train resumes from its last
#    checkpoint and stops at train_steps); delete $OUT/{run}_{variant} to redo it.
# 3. evaluation: train.evaluate, one pass over the 100 test sequences
#    (100 frames each) with the paper's metrics (average center pixel error,
#    average IoU over all frames); the RL agent sees frames only, Re3 gets the
#    first box and resets its LSTM every 32 frames as at test time.
# 4. the table: train.experiments.report mnist, ours next to the paper's.
#
# Outputs: $OUT/{run}_{variant}/ (checkpoints, config.yaml, train_log.jsonl),
# $OUT/eval/{run}_{variant}/ (performance.json, boxes, plots),
# $OUT/table1.md and $OUT/table1.json. Weights stay out of git (runs/ is ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."

OUT=${OUT:-runs/mnist_table1}
DATA=${DATA:-runs/data}
MNIST=${MNIST:-../shared/data/mnist}
VARIANTS=${VARIANTS:-"fixed scalable noisy"}
RUNS=${RUNS:-"rl_reinforce rl_mixed re3"}
RL_STEPS=${RL_STEPS:-3000}
RL_BATCH=${RL_BATCH:-16}
RL_LR=${RL_LR:-1e-3}
RE3_STEPS=${RE3_STEPS:-3000}
# Re3 on the noisy setting keeps improving after 3000 steps (moving distractor:
# 7.64 px, 69.4% at 3000 steps, 70.1% at 6000; static: 6.06 px, 71.6% at 6000).
RE3_STEPS_noisy=${RE3_STEPS_noisy:-6000}
SEED=${SEED:-0}
# The noisy setting's distractor digit: static (default, part of the
# background) or moving like the target; see pipelines/synthetic/moving_mnist.py.
# Use another DATA and OUT for the moving one, e.g.
#   DISTRACTOR=moving DATA=runs/data_moving OUT=runs/mnist_table1_moving VARIANTS=noisy bash train/experiments/mnist_table1.sh
DISTRACTOR=${DISTRACTOR:-static}

log() { echo "[$(date +%H:%M:%S)] $*"; }
mkdir -p "$OUT/eval"

for v in $VARIANTS; do
  d="$DATA/mnist_$v"
  if ls "$d"/moving_mnist_"$v"-test.tfrecord-* >/dev/null 2>&1; then
    log "data: reusing $d"
  else
    log "data: python -m pipelines.build_moving_mnist --variant $v -> $d"
    python -m pipelines.build_moving_mnist --variant "$v" --mnist_dir "$MNIST" \
      --output_dir "$d" --seed "$SEED" --num_train 500 --num_test 100 \
      --train_length 20 --test_length 100 --num_shards 4 --preview 4 \
      --mnist_distractor_motion "$DISTRACTOR" --runner DirectRunner
  fi
done

train_run() {  # run variant
  local run=$1 v=$2 dir="$OUT/$1_$2" start
  start=$(date +%s)
  case "$run" in
    rl_reinforce|rl_mixed|rl_mixed_tanh|rl_mixed_aug)
      local objective=reinforce activation=relu mirror=0.0
      [ "$run" != rl_reinforce ] && objective=mixed
      [ "$run" = rl_mixed_tanh ] || [ "$run" = rl_mixed_aug ] && activation=tanh
      [ "$run" = rl_mixed_aug ] && mirror=0.5
      log "train $run $v: python -m train.train --config configs/drlt_mnist_$v.yaml ..."
      python -m train.train --config "configs/drlt_mnist_$v.yaml" --model_dir "$dir" \
        --set "data.train_dir=$DATA/mnist_$v" --set "trainer.train_steps=$RL_STEPS" \
        --set "trainer.rl.batch_size=$RL_BATCH" --set "trainer.learning_rate=$RL_LR" \
        --set "trainer.rl.objective=$objective" --set trainer.checkpoint_every=500 \
        --set "model.lstm_activation=$activation" --set "data.mirror_prob=$mirror" \
        --set "runtime.seed=$SEED" ;;
    re3)
      local steps_var="RE3_STEPS_$v"
      local steps=${!steps_var:-$RE3_STEPS}
      log "train re3 $v: python -m train.train --config configs/experiments/re3_mnist.yaml ... ($steps steps)"
      python -m train.train --config configs/experiments/re3_mnist.yaml --model_dir "$dir" \
        --set "data.train_dir=$DATA/mnist_$v" --set "trainer.train_steps=$steps" \
        --set "runtime.seed=$SEED" ;;
    *) echo "unknown run $run (rl_reinforce | rl_mixed | rl_mixed_tanh | rl_mixed_aug | re3)" >&2; exit 2 ;;
  esac
  log "train $run $v: $(( $(date +%s) - start )) s"
}

eval_run() {  # run variant
  local run=$1 v=$2 tracker=rl_agent start
  [ "$run" = re3 ] && tracker=re3
  start=$(date +%s)
  log "eval $run $v: python -m train.evaluate --model $OUT/${run}_$v --dataset mnist:$DATA/mnist_$v --split test --protocol ope --trackers $tracker"
  python -m train.evaluate --model "$OUT/${run}_$v" --dataset "mnist:$DATA/mnist_$v" \
    --split test --protocol ope --trackers "$tracker" --output_dir "$OUT/eval/${run}_$v"
  log "eval $run $v: $(( $(date +%s) - start )) s"
}

for v in $VARIANTS; do
  for run in $RUNS; do
    train_run "$run" "$v"
    eval_run "$run" "$v"
  done
done

python -m train.experiments.report mnist --root "$OUT/eval" --json "$OUT/table1.json" \
  | tee "$OUT/table1.md"
