#!/bin/bash
# A kvsim sweep as a Slurm job array: each array task runs one shard of the grid, and a
# dependent job merges the shards into exactly the unsharded CSV.
#
#   sbatch --array=1-16 docs/jobs/sweep-slurm.sh
#   sbatch --dependency=afterok:<array job id> --wrap \
#     'kvsim merge out/sweep/shard-*.csv --out out/sweep/sweep.csv'
#
# Run outside Slurm (no array), the same script runs the whole grid unsharded into
# out/sweep/unsharded.csv: what the merged shards must equal byte for byte
# (`docs/jobs/slurm-local.sh` checks that on a real single-node Slurm).
#
# The trace is the Azure 2023 conversation trace: put it under traces/external/ or name it
# with KVSIM_TRACE (relative to the directory the job runs in).
#
#SBATCH --job-name=kvsim-sweep
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=01:00:00
#SBATCH --output=out/sweep/slurm-%A_%a.log
set -euo pipefail
TRACE=${KVSIM_TRACE:-traces/external/azure2023/AzureLLMInferenceTrace_conv.csv}
if [ -n "${SLURM_ARRAY_TASK_COUNT:-}" ]; then
  SHARD=(--shard "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT")
  OUT=out/sweep/shard-$SLURM_ARRAY_TASK_ID.csv
else
  SHARD=()
  OUT=out/sweep/unsharded.csv
fi
mkdir -p out/sweep
kvsim sweep scenarios/azure-conversation.yaml \
  --set workload.source.path="$TRACE" \
  --vary workload.rate_scale=0.5,1,2,4 \
  --vary hardware.gpu=h100-sxm,a100-80gb \
  --vary engine.max_num_batched_tokens=2048,8192 \
  --vary kv_cache.block_size=16,32 \
  --vary cluster.replicas=1,2 \
  "${SHARD[@]}" --jobs "${SLURM_CPUS_PER_TASK:-$(nproc)}" \
  --out "$OUT"
