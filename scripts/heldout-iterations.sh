#!/bin/bash
# Held-out iterations (seed 5 layouts, rtol 1e-6, smooth rhs) of one method:
#   scripts/heldout-iterations.sh METHOD [N...]   (default N: 64 128)
m=$1; shift
sizes=("$@")
[ ${#sizes[@]} -eq 0 ] && sizes=(64 128)
for n in "${sizes[@]}"; do
  echo -n "$m n=$n: "
  for sc in bunny pool obstacles; do
    OMP_NUM_THREADS=1 ./build/dcdm solve --scene $sc --n $n --seed 5 --method $m --rtol 1e-6 --rhs smooth 2>&1 | grep -o "iterations [0-9]*" | head -1 | sed "s/iterations /$sc /" | tr '\n' ' '
  done
  echo
done
