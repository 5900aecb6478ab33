#!/usr/bin/env bash
# Run docs/jobs/sweep-slurm.sh for real: start a single-node Slurm here (Debian's
# slurm-wlm: munged, slurmctld and slurmd on this host, all state in a temporary folder),
# submit the sweep as a job array of TASKS tasks (default 3) and the merge as a job that
# depends on it, wait for both, then run the same grid unsharded outside Slurm and require
# the merged CSV to equal it byte for byte.
#
#   bash docs/jobs/slurm-local.sh [KVSIM_BINARY]       # default: target/release/kvsim
#
# Needs root (the daemons run as root) and Slurm installed; if `slurmctld` is missing it is
# installed with apt-get. The trace is ../shared's Azure 2023 conversation trace unless
# KVSIM_TRACE names another. Exit 0 only when every job completed and the files match.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
bin=$(realpath "${1:-$repo/target/release/kvsim}")
trace=$(realpath "${KVSIM_TRACE:-$repo/../shared/traces/azure2023/AzureLLMInferenceTrace_conv.csv}")
tasks=${TASKS:-3}

[ "$(id -u)" -eq 0 ] || { echo "error: run as root (the Slurm daemons run as root)" >&2; exit 2; }
[ -x "$bin" ] || { echo "error: no kvsim binary at $bin (cargo build --release)" >&2; exit 2; }
[ -f "$trace" ] || { echo "error: no trace at $trace (set KVSIM_TRACE)" >&2; exit 2; }
if ! command -v slurmctld >/dev/null; then
    echo "installing slurm-wlm and munge with apt-get" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null; }
fi

work=$(mktemp -d /tmp/kvsim-slurm.XXXXXX)
pids=()
finish() {
    rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # The daemons write their seed and pid files as they stop: wait for them before removing.
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" -ne 0 ]; then
        echo "slurm-local: failed (rc $rc); logs:" >&2
        tail -n 20 "$work"/*.log "$work"/run/out/sweep/*.log 2>/dev/null >&2 || true
    fi
    rm -rf "$work" 2>/dev/null || { sleep 1; rm -rf "$work"; }
    exit "$rc"
}
trap finish EXIT

# Authentication: a munge daemon of our own, with a fresh key, on its own socket.
mkdir -p "$work"/{state,spool,munge,key,run/out/sweep,bin}
chmod 755 "$work/munge"
chmod 700 "$work/key"
dd if=/dev/urandom of="$work/key/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/key/munge.key"
socket=$work/munge/munge.socket
munged --force --foreground --key-file="$work/key/munge.key" --socket="$socket" \
    --pid-file="$work/key/munged.pid" --log-file="$work/munged.log" \
    --seed-file="$work/key/seed" >"$work/munged.out" 2>&1 &
pids+=($!)

host=$(hostname -s)
cpus=$(nproc)
mem=$(($(awk '/MemTotal/ {print $2}' /proc/meminfo) / 2048))
port=$((20000 + RANDOM % 20000))
cat >"$work/slurm.conf" <<EOF
ClusterName=kvsim-local
SlurmctldHost=$host
SlurmctldPort=$port
SlurmdPort=$((port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$work/slurm.conf

for _ in $(seq 50); do [ -S "$socket" ] && break; sleep 0.1; done
slurmctld -D -f "$SLURM_CONF" >"$work/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$work/slurmd.out" 2>&1 &
pids+=($!)
for i in $(seq 120); do
    state=$(sinfo -h -o %T 2>/dev/null || true)
    [ "$state" = idle ] && break
    [ "$i" -eq 120 ] && { echo "error: the node never became idle (state '$state')" >&2; exit 1; }
    sleep 0.5
done
echo "slurm-local: Slurm $(sinfo -V | awk '{print $2}') up on $host ($cpus CPUs)"

# The jobs run in their own folder, with kvsim on PATH and the scenarios beside them.
run=$work/run
ln -s "$repo/scenarios" "$run/scenarios"
ln -s "$bin" "$work/bin/kvsim"
export PATH=$work/bin:$PATH KVSIM_TRACE=$trace
array=$(sbatch --parsable --array=1-"$tasks" --cpus-per-task=1 --mem=1G --chdir="$run" \
    "$repo/docs/jobs/sweep-slurm.sh")
merge=$(sbatch --parsable --dependency=afterok:"$array" --chdir="$run" --mem=1G \
    --output=out/sweep/merge.log --job-name=kvsim-merge \
    --wrap 'kvsim merge out/sweep/shard-*.csv --out out/sweep/sweep.csv')
echo "slurm-local: array job $array ($tasks tasks), merge job $merge"

# Wait until every job has ended, then require each to have completed. `scontrol` lists an
# array's tasks one per line; a failed query (no lines) counts as not ended, and a job whose
# dependency failed (pending for ever) as ended.
states() { scontrol -o show job "$array" && scontrol -o show job "$merge"; }
ended() {
    local s
    s=$(states 2>/dev/null | sed 's/.*JobState=\([A-Z_]*\).*Reason=\([A-Za-z_]*\).*/\1:\2/') || return 1
    [ -n "$s" ] && ! grep -qvE '^((COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY|NODE_FAIL|BOOT_FAIL|DEADLINE|PREEMPTED):.*|PENDING:DependencyNeverSatisfied)$' <<<"$s"
}
for i in $(seq 1200); do
    ended && break
    [ "$i" -eq 1200 ] && { echo "error: jobs not ended after 10 min" >&2; states >&2 || true; exit 1; }
    sleep 0.5
done
summary=$(states | grep -o 'JobId=[0-9]* \(ArrayJobId=[0-9]* ArrayTaskId=[0-9]* \)\?JobName=[^ ]*\|JobState=[A-Z_]*' | paste -sd' ')
echo "slurm-local: $summary"
if states | grep -o 'JobState=[A-Z_]*' | grep -qv '=COMPLETED$'; then
    echo "error: not every job completed" >&2
    exit 1
fi
[ "$(states | grep -c 'JobState=COMPLETED')" -eq $((tasks + 1)) ] ||
    { echo "error: expected $((tasks + 1)) completed jobs" >&2; exit 1; }

(cd "$run" && env -u SLURM_CONF bash "$repo/docs/jobs/sweep-slurm.sh")
if cmp "$run/out/sweep/sweep.csv" "$run/out/sweep/unsharded.csv"; then
    echo "slurm-local: merged $tasks shards = unsharded sweep, byte for byte ($(($(wc -l <"$run/out/sweep/sweep.csv") - 1)) points)"
else
    echo "error: the merged shards differ from the unsharded sweep" >&2
    exit 1
fi
