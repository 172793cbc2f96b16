#!/usr/bin/env bash
# Runs a domiso sweep as a Slurm job array of N shards, waits for it, checks every task,
# and merges the shards into OUT/merged/sweep.csv (byte-identical to a one-machine sweep).
#
#   tools/slurm/run-sweep.sh SWEEP.toml N OUT [-- SBATCH_OPTION...]
#
#   SWEEP.toml  the sweep file (its base scenario is found relative to it)
#   N           number of array tasks (shards); task K runs the runs with index % N == K-1
#   OUT         output directory: OUT/shard-K/ per task, OUT/logs/ task logs,
#               OUT/merged/sweep.csv at the end
#   -- ...      extra sbatch options, e.g. -- --partition=short --time=0-02:00 --cpus-per-task=8
#
# Environment: DOMISO  the domiso binary (default: target/release/domiso of this checkout,
#                      else `domiso` on PATH), copied to OUT/bin/domiso for the tasks.
#                      SWEEP (with its base scenarios) and OUT must be visible at the
#                      same paths on the compute nodes (a shared filesystem).
#
# Re-running the same command after a failure (or Ctrl-C, which cancels the array)
# re-submits the array; every task resumes from the rows its shard already has.
# Exit status: 0 merged; 1 a task or the merge failed; 2 usage; 3 Slurm not available.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
SCRIPT=$here/sweep-array.sbatch

say() { printf 'run-sweep: %s\n' "$*" >&2; }
usage() {
    sed -n '5,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}
die() { say "error: $1"; exit "${2:-1}"; }

(($# >= 3)) || usage
SWEEP=$1 N=$2 OUT=$3
shift 3
if (($#)); then
    [[ $1 == -- ]] || usage
    shift
fi
EXTRA=("$@")

[[ $N =~ ^[1-9][0-9]*$ ]] || die "N must be a positive integer, got '$N'" 2
[[ -f $SWEEP && -r $SWEEP ]] || die "sweep file not found: $SWEEP" 2
SWEEP=$(realpath "$SWEEP")
OUT=$(realpath -m "$OUT")

if [[ -z ${DOMISO:-} ]]; then
    if [[ -x $repo/target/release/domiso ]]; then
        DOMISO=$repo/target/release/domiso
    elif command -v domiso >/dev/null; then
        DOMISO=$(command -v domiso)
    else
        die "no domiso binary: build it (cargo build --release) or set DOMISO=/path/to/domiso" 2
    fi
fi
[[ -x $DOMISO ]] || DOMISO=$(command -v "$DOMISO") || die "DOMISO=$DOMISO is not executable" 2
DOMISO=$(realpath "$DOMISO")

# ---- Slurm present and answering? ----
for c in sbatch squeue scontrol sinfo; do
    command -v "$c" >/dev/null ||
        die "Slurm is not available: '$c' not found on PATH (on this machine: tools/slurm/local-cluster.sh start)" 3
done
if ! err=$(sinfo -h -o '%P' 2>&1) || [[ -z $err ]]; then
    die "Slurm is not available: sinfo cannot reach a controller with a partition (${err:-no partitions}); on this machine: tools/slurm/local-cluster.sh start" 3
fi

# ---- Fail fast on a bad sweep file, before anything is queued: --dry-run builds every
# point's scenario and runs nothing. ----
if ! err=$("$DOMISO" sweep "$SWEEP" --dry-run 2>&1 >/dev/null); then
    printf '%s\n' "$err" >&2
    die "the sweep file does not load: $SWEEP" 2
fi

# ---- Submit and wait. ----
mkdir -p "$OUT/logs" "$OUT/bin" || die "cannot create $OUT/logs" 2
# The tasks run a copy in OUT/bin (so on the shared filesystem with OUT): a `cargo build`
# while the array runs must not swap the binary under tasks that have not started yet.
{ install -m 0755 "$DOMISO" "$OUT/bin/.domiso.$$" && mv -f "$OUT/bin/.domiso.$$" "$OUT/bin/domiso"; } ||
    die "cannot copy $DOMISO to $OUT/bin" 2
DOMISO=$OUT/bin/domiso
say "submitting $N task(s): $SWEEP -> $OUT (domiso: $DOMISO)"
t0=$(date +%s)
submitted=$(mktemp)
jobid=""
cancel() {
    trap - INT TERM
    [[ -n $jobid ]] || jobid=$(cut -d';' -f1 "$submitted" 2>/dev/null || true)
    if [[ -n $jobid ]]; then
        say "interrupted: cancelling job array $jobid (re-run the same command to resume)"
        scancel "$jobid" || true
    fi
    rm -f "$submitted"
    exit 130
}
trap cancel INT TERM
# --parsable prints the job id as soon as the array is queued; --wait then blocks until
# every task has ended and exits with the highest task exit code (1 if one was killed by
# a signal).
set +e
sbatch --wait --parsable --array="1-$N" \
    --export="ALL,SWEEP=$SWEEP,OUT=$OUT,DOMISO=$DOMISO,SHARDS=$N" \
    --output="$OUT/logs/%x-%A_%a.out" \
    "${EXTRA[@]}" "$SCRIPT" >"$submitted" &
sbatch_pid=$!
for _ in $(seq 600); do
    [[ -s $submitted ]] && break
    kill -0 "$sbatch_pid" 2>/dev/null || break
    sleep 0.1
done
jobid=$(cut -d';' -f1 "$submitted" 2>/dev/null | head -n 1)
[[ -n $jobid ]] && say "job array $jobid queued; task logs: $OUT/logs/*-${jobid}_<task>.out"
# sbatch --wait polls slurmctld after 2, 8, 32, 32, ... s, so it can notice the end up to
# 32 s late; squeue every 2 s notices sooner, then that sbatch (ours) is let go. Task
# states are checked below either way.
if [[ -n $jobid ]]; then
    while kill -0 "$sbatch_pid" 2>/dev/null; do
        if left=$(squeue -h -r -j "$jobid" -o %i 2>/dev/null) && [[ -z $left ]]; then
            sleep 1
            kill -0 "$sbatch_pid" 2>/dev/null && kill "$sbatch_pid" 2>/dev/null && sbatch_early=1
            break
        fi
        sleep 2
    done
fi
wait "$sbatch_pid"
sbatch_rc=$?
if [[ -n ${sbatch_early:-} ]]; then sbatch_rc=0; fi # its own exit code is lost; states decide
set -e
trap - INT TERM
rm -f "$submitted"
[[ -n $jobid ]] || die "sbatch did not queue the array (exit $sbatch_rc)"
t1=$(date +%s)
if [[ -n ${sbatch_early:-} ]]; then
    say "job array $jobid ended after $((t1 - t0)) s (left squeue)"
else
    say "job array $jobid ended after $((t1 - t0)) s (sbatch --wait exit $sbatch_rc)"
fi

# ---- Every task COMPLETED with exit 0? From slurmctld, which keeps finished jobs for
# MinJobAge seconds (300 by default); else from sacct (accounting, if the site has it). ----
declare -A state=()
source="scontrol show job"
while read -r line; do
    [[ $line =~ ArrayTaskId=([0-9]+)\  ]] || continue
    k=${BASH_REMATCH[1]}
    [[ $line =~ JobState=([A-Z_]+) ]] && st=${BASH_REMATCH[1]} || st=UNKNOWN
    [[ $line =~ \ ExitCode=([0-9:]+) ]] && ec=${BASH_REMATCH[1]} || ec='?'
    state[$k]="$st $ec"
done < <(scontrol -o show job "$jobid" 2>/dev/null || true)
if ((${#state[@]} < N)) && rows=$(sacct -n -P -X -j "$jobid" -o JobID,State,ExitCode 2>/dev/null) && [[ -n $rows ]]; then
    source=sacct
    state=()
    while IFS='|' read -r id st ec; do
        [[ $id =~ _([0-9]+)$ ]] || continue
        state[${BASH_REMATCH[1]}]="$st $ec"
    done <<<"$rows"
fi
bad=()
if ((${#state[@]} == 0)); then
    say "warning: no task states from sacct or scontrol (job records expired?); relying on the exit code and the merge"
    ((sbatch_rc == 0)) || bad+=("(sbatch --wait exit $sbatch_rc)")
else
    for k in $(seq "$N"); do
        s=${state[$k]:-MISSING ?}
        printf '  task %-4s %s\n' "$k" "$s" >&2
        [[ $s == "COMPLETED 0:0" ]] || bad+=("$k")
    done
    say "task states from $source"
fi
if ((${#bad[@]})) || ((sbatch_rc != 0)); then
    say "FAILED task(s): ${bad[*]:-"?"}; see $OUT/logs/*-${jobid}_<task>.out"
    die "not merged. Re-run the same command to resubmit: finished runs are kept (--resume)"
fi

# ---- Merge shard-1..shard-N (not a glob: OUT may hold shards of an earlier N). ----
shards=()
for k in $(seq "$N"); do shards+=("$OUT/shard-$k"); done
"$DOMISO" sweep merge "${shards[@]}" --out "$OUT/merged" || die "merge failed"
say "done in $(($(date +%s) - t0)) s: $OUT/merged/sweep.csv"
