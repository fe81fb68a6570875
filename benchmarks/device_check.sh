#!/usr/bin/env bash
# One prepared run of probe, bench and measure on a machine with an NVIDIA GPU, for docs/measured.md.
#
#   benchmarks/device_check.sh OUT_DIR        (a Python env with suanli[measure] and a CUDA build of torch)
#
# Writes OUT_DIR/commit.txt, probe.json, bench.json + profile.toml, and one measure-*.json per case, each run's
# stderr beside it; a failing step is recorded (its .err file) and the script goes on, so one short device session
# yields everything it can. Nothing here is a test: CI has no GPU.
set -uo pipefail
out=${1:?usage: benchmarks/device_check.sh OUT_DIR}
mkdir -p "$out"
cd "$(dirname "$0")/.."
suanli=${SUANLI:-suanli}

git rev-parse HEAD > "$out/commit.txt" 2>/dev/null || echo unknown > "$out/commit.txt"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true

step() {  # step NAME ARGS...: run suanli ARGS --json into OUT/NAME.json (stderr to NAME.err), timed
  local name=$1; shift
  local start=$SECONDS
  $suanli "$@" --json > "$out/$name.json" 2> "$out/$name.err" || echo "exit $? after $((SECONDS - start)) s" >> "$out/$name.err"
  echo "$name: $((SECONDS - start)) s"
}

step probe probe
step bench bench --device cuda --out "$out/profile.toml"
for model in tinyllama-stories15m qwen2.5-0.5b llama-3.2-1b; do
  step "measure-train-$model" measure "$model" --device cuda --mode train --dtype bf16 --seq 1024 --batch 4 \
       --steps 10 --calibration "$out/profile.toml"
  step "measure-infer-$model" measure "$model" --device cuda --mode infer --dtype bf16 --seq 1024 --batch 8 \
       --output 128 --steps 3 --calibration "$out/profile.toml"
done
step "measure-lora-llama-3.2-1b" measure llama-3.2-1b --device cuda --mode train --method lora --dtype bf16 \
     --seq 1024 --batch 4 --steps 10 --calibration "$out/profile.toml"
