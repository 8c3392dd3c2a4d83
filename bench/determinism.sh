#!/usr/bin/env bash
# Determinism check of issue 10: N repeats of a short training run at 1 and at 2 threads must give bit-identical
# LoRAs with 0 skipped steps, and N runs of `fnf world train-base --steps 3` at 2 threads bit-identical weights
# with finite losses. Prints one line per check and a summary; exit 1 on any difference.
# Usage: bench/determinism.sh [N=20] [M=N]   (from the repository root: N training repeats per thread count take
# ~8 min for N=20 on 2 idle cores; each of the M train-base repeats ~1.5 min, most of it its final evaluation)
set -euo pipefail
N=${1:-20}
M=${2:-$N}
cd "$(dirname "$0")/.."
dotnet build src/FocusNFix.Cli -c Release -v q -nologo >/dev/null
FNF=src/FocusNFix.Cli/bin/Release/net10.0/fnf
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

for threads in $([[ $N -gt 0 ]] && echo 1 2); do
  hashes=()
  skipped_total=0
  for i in $(seq 1 "$N"); do
    cat > "$work/train.json" <<JSON
{ "model": "models/shapesworld/base", "objective": "focus-n-fix", "output_dir": "$work/run-$threads-$i",
  "seed": 0, "threads": $threads,
  "prompts": { "world_split": "train", "limit": 4, "seeds_per_prompt": 1 },
  "sampling": { "steps": 10 },
  "rewards": [ { "type": "region-reward-model", "path": "models/shapesworld/reward-hazard" } ],
  "heatmap": { "type": "reward-model", "path": "models/shapesworld/reward-hazard" },
  "train": { "steps": 10, "batch_size": 2, "checkpoint_every": 5, "sample_every": 0 } }
JSON
    "$FNF" train --config "$work/train.json" >/dev/null 2>"$work/err.txt" || { echo "run $i (threads $threads) failed:"; cat "$work/err.txt"; exit 1; }
    hashes+=("$(sha256sum "$work/run-$threads-$i/pytorch_lora_weights.safetensors" | cut -d' ' -f1)")
    skipped=$(grep -c '"skipped":true' "$work/run-$threads-$i/log.jsonl" || true)
    skipped_total=$((skipped_total + skipped))
    rm -rf "$work/run-$threads-$i/originals" "$work/run-$threads-$i/checkpoints"
  done
  distinct=$(printf '%s\n' "${hashes[@]}" | sort -u | wc -l)
  echo "train threads=$threads: $N runs, $distinct distinct LoRA(s), $skipped_total skipped step(s)"
  [[ $distinct -eq 1 && $skipped_total -eq 0 ]] || fail=1
done

hashes=()
nonfinite=0
for i in $(seq 1 "$M"); do
  "$FNF" world train-base --steps 3 --batch 8 --eval-seeds 1 --threads 2 --out "$work/base-$i" --logdir "$work/tb-$i" >/dev/null 2>"$work/err.txt" \
    || { echo "train-base run $i failed:"; cat "$work/err.txt"; exit 1; }
  hashes+=("$(sha256sum "$work/base-$i/unet/diffusion_pytorch_model.safetensors" | cut -d' ' -f1)")
  if grep -qiE '\bnan\b|infinity' "$work/base-$i/MODEL_CARD.md"; then nonfinite=$((nonfinite + 1)); fi
  rm -rf "$work/base-$i" "$work/tb-$i"
done
distinct=$(printf '%s\n' "${hashes[@]}" | sort -u | wc -l)
echo "world train-base --steps 3, threads=2: $M runs, $distinct distinct UNet(s), $nonfinite with a non-finite figure"
[[ $distinct -eq 1 && $nonfinite -eq 0 ]] || fail=1

[[ $fail -eq 0 ]] && echo "determinism: OK" || { echo "determinism: FAILED"; exit 1; }
