#!/bin/bash
# A kvsim sweep as a Slurm job array: each array task runs one shard of the grid, and a
# dependent job merges the shards into exactly the unsharded CSV.
#
#   sbatch --array=1-16 docs/jobs/sweep-slurm.sh
#   sbatch --dependency=afterok:<array job id> --wrap \
#     'kvsim merge out/sweep/shard-*.csv --out out/sweep/sweep.csv'
#
#SBATCH --job-name=kvsim-sweep
#SBATCH --cpus-per-task=8
#SBATCH --mem=8G
#SBATCH --time=01:00:00
#SBATCH --output=out/sweep/slurm-%A_%a.log
set -euo pipefail
N=${SLURM_ARRAY_TASK_COUNT:?run as a job array}
K=$SLURM_ARRAY_TASK_ID
mkdir -p out/sweep
kvsim sweep scenarios/azure-conversation.yaml \
  --vary workload.rate_scale=0.5,1,2,4 \
  --vary hardware.gpu=h100-sxm,a100-80gb \
  --vary engine.max_num_batched_tokens=2048,8192 \
  --vary kv_cache.block_size=16,32 \
  --vary cluster.replicas=1,2 \
  --shard "$K/$N" --jobs "$SLURM_CPUS_PER_TASK" \
  --out "out/sweep/shard-$K.csv"
