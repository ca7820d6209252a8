#!/usr/bin/env bash
# The distillation evidence table on Mahjong: labels only vs verified rationales without KD vs live
# logit KD (T=2 and T=1) vs KD from the offline top-k store vs knowledge injection, at equal data and steps, over
# several seeds, from a stronger tiny teacher trained first on the task. Each condition is an experiment config,
# conf/experiment/kd_evidence/<condition>.yaml (python -m stratos ... experiment=kd_evidence/<condition>).
#
#   bash launchers/kd_evidence.sh                 # teacher (3000 steps) + 6 conditions x 5 seeds x 600 steps
#   STEPS=300 SEEDS="0 1" bash launchers/kd_evidence.sh
#   OUT=/data/kd TEACHER=/path/to/hf/model bash launchers/kd_evidence.sh   # reuse a teacher
#   EXTRA="debug=fast task.n_train=256" bash launchers/kd_evidence.sh      # extra overrides for every run
#   CONDITIONS="a_labels_only d_injection" bash launchers/kd_evidence.sh    # a subset of the conditions
#
# Jobs run PARALLEL at a time (default 2), one torch thread each. Every run is a normal Stratos run
# (resumable: re-running skips finished stages); the table is printed by
# `python -m stratos.distill.evidence $OUT/runs` and saved as $OUT/evidence.md.
set -euo pipefail
OUT=${OUT:-outputs/kd_evidence}
STEPS=${STEPS:-600}
SEEDS=${SEEDS:-"0 1 2 3 4"}
PARALLEL=${PARALLEL:-2}
TEACHER_STEPS=${TEACHER_STEPS:-3000}
# each condition is an experiment config: conf/experiment/kd_evidence/<condition>.yaml
EXPERIMENTS="$(dirname "$0")/../conf/experiment/kd_evidence"
ALL=$(cd "$EXPERIMENTS" && ls -1 *.yaml | sed 's/\.yaml$//' | sort | xargs)
CONDITIONS=${CONDITIONS:-$ALL}
PY=${PYTHON:-python}
read -r -a extra <<< "${EXTRA:-}"
for name in $CONDITIONS; do  # before any work: a typo must not cost a teacher training
  [ -f "$EXPERIMENTS/$name.yaml" ] || { echo "unknown condition '$name' in CONDITIONS (allowed: $ALL)" >&2; exit 2; }
done
mkdir -p "$OUT/runs"

# Every run trains on one mix of hands (task.curriculum=[]): the evidence was measured so, before Mahjong's
# default became a staged curriculum.
if [ -z "${TEACHER:-}" ]; then  # the teacher: the default student recipe, trained 5x longer on the same data
  $PY -m stratos +task=mahjong 'task.curriculum=[]' strategy=alignment trainer.max_steps="$TEACHER_STEPS" trainer.max_minutes=0 \
    trainer.num_threads=2 paths.output_root="$OUT" hydra.run.dir="$OUT/teacher" \
    'pipeline.stages=[data,distill,evaluate]' "${extra[@]}"
  TEACHER="$OUT/teacher/distill/model"
fi

common=(+task=mahjong 'task.curriculum=[]' "teacher.name_or_path=$TEACHER" "trainer.max_steps=$STEPS"
        trainer.max_minutes=0 trainer.num_threads=1 trainer.progress_bar=false "paths.output_root=$OUT"
        'pipeline.stages=[data,distill,evaluate]' "${extra[@]}")
run_one() {  # name seed
  local dir="$OUT/runs/$1/seed$2"
  mkdir -p "$(dirname "$dir")"
  if $PY -m stratos "${common[@]}" "experiment=kd_evidence/$1" seed="$2" hydra.run.dir="$dir" > "$dir.log" 2>&1; then
    echo "done   $1 seed $2"
  else
    echo "FAILED $1 seed $2 (see $dir.log)"; return 1
  fi
}
failed=0
for seed in $SEEDS; do
  for name in $CONDITIONS; do
    while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || failed=1; done
    echo "start  $name seed $seed"
    run_one "$name" "$seed" &
  done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
$PY -m stratos.distill.evidence "$OUT/runs" --teacher "$TEACHER" | tee "$OUT/evidence.md"
exit $failed
