#!/usr/bin/env bash
# A one-node Slurm "cluster" on this machine, for trying tools/slurm/ without a real one.
#
#   tools/slurm/local-cluster.sh start    install slurm-wlm + munge if missing, write the
#                                         config, start munged, slurmctld and slurmd, and
#                                         wait until the node is idle (idempotent)
#   tools/slurm/local-cluster.sh status   daemons, sinfo, squeue
#   tools/slurm/local-cluster.sh stop     cancel the jobs left, stop the three daemons (by
#                                         their pid files)
#
# Needs root. Works without systemd (the daemons are started directly) and without cgroups
# (proctrack/linuxproc, task/none). The node is this host: name, CPUs, sockets, cores and
# memory are detected at start, so the config follows the machine it runs on.
#
# Files:  /etc/slurm/slurm.conf       (clients find it there without SLURM_CONF)
#         /etc/munge/munge.key        (created if missing)
#         $STATE (/var/lib/domiso-slurm)  controller state, slurmd spool, job completions
#         $LOGS  (/var/log/domiso-slurm)  slurmctld.log, slurmd.log
#         $RUN   (/run/domiso-slurm)      slurmctld/slurmd pid files
#         munged keeps its Debian defaults: /run/munge/munged.pid, /var/log/munge/munged.log
# A slurm.conf that this script did not write is never overwritten.
set -euo pipefail

STATE=${DOMISO_SLURM_STATE:-/var/lib/domiso-slurm}
LOGS=${DOMISO_SLURM_LOGS:-/var/log/domiso-slurm}
RUN=${DOMISO_SLURM_RUN:-/run/domiso-slurm}
CONF=/etc/slurm/slurm.conf
MUNGE_PID=/run/munge/munged.pid
MARK="# Written by domiso tools/slurm/local-cluster.sh"
PARTITION=debug
CLUSTER=domiso-local

say() { printf 'local-cluster: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "must run as root (it installs packages and starts daemons)"; }

# Pid from a pid file, if that process is alive.
alive() {
    local f=$1 pid
    [[ -s $f ]] || return 1
    pid=$(<"$f")
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

install_packages() {
    local missing=()
    command -v munged >/dev/null || missing+=(munge)
    command -v slurmctld >/dev/null || missing+=(slurmctld)
    command -v slurmd >/dev/null || missing+=(slurmd)
    command -v sbatch >/dev/null || missing+=(slurm-client)
    ((${#missing[@]})) || return 0
    command -v apt-get >/dev/null || die "slurm/munge missing and no apt-get: install ${missing[*]} by hand"
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # The package scripts try to start services; without systemd/invoke-rc.d that is
    # harmless (they fail softly), and we start the daemons ourselves below.
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
    local c
    for c in slurmctld slurmd munged sbatch; do
        command -v "$c" >/dev/null || die "apt-get install slurm-wlm munge did not provide $c"
    done
}

setup_munge() {
    install -d -m 0700 -o munge -g munge /etc/munge /var/lib/munge
    install -d -m 0711 -o munge -g munge /var/log/munge
    install -d -m 0755 -o munge -g munge /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
}

start_munge() {
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0
    fi
    say "starting munged"
    rm -f "$MUNGE_PID"
    # munged runs as its own user, as the packaged service would (default socket, key,
    # pid file /run/munge/munged.pid and log /var/log/munge/munged.log).
    runuser -u munge -- munged || die "munged did not start (see /var/log/munge/munged.log)"
    for _ in $(seq 50); do
        munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munge does not answer (see /var/log/munge/munged.log)"
}

# The NodeName line for this host, from `slurmd -C` (the hardware as slurmd sees it, so
# slurmd will not drain the node for a mismatch), with RealMemory lowered a little.
node_line() {
    local host=$1 detected mem
    detected=$(slurmd -C 2>/dev/null | head -n 1) || true
    [[ $detected == NodeName=* ]] || die "slurmd -C printed nothing usable: $detected"
    mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$detected")
    [[ -n $mem ]] || mem=$(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo)
    mem=$((mem * 95 / 100)) # leave room: a node whose memory looks short gets drained
    # Drop NodeName/RealMemory/UpTime; keep CPUs, Boards, Sockets, Cores, Threads.
    local rest
    rest=$(tr ' ' '\n' <<<"$detected" | grep -Ev '^(NodeName|RealMemory|UpTime)=' | tr '\n' ' ')
    echo "NodeName=$host NodeAddr=127.0.0.1 ${rest}RealMemory=$mem State=UNKNOWN"
}

write_config() {
    local host=$1 line
    if [[ -e $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        die "$CONF exists and was not written by this script; move it away first"
    fi
    line=$(node_line "$host")
    install -d -m 0755 /etc/slurm
    local tmp
    tmp=$(mktemp /etc/slurm/.slurm.conf.XXXXXX)
    cat >"$tmp" <<EOF
$MARK at $(date -u +%Y-%m-%dT%H:%M:%SZ).
# A single-node cluster for trying domiso's job-array sweeps; see tools/slurm/.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
# Daemons run as root: a throwaway local cluster, no slurm user needed.
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
# No mail on this host (sbatch --mail-* are ignored); silences "MailProg is invalid".
MailProg=/bin/true
# No cgroups: track job processes through /proc, bind nothing.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# Cores are the unit of allocation; memory is not a consumable (so jobs need no --mem).
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# No slurmdbd here, so sacct has no data; finished jobs are kept by slurmctld for
# MinJobAge seconds (scontrol show job) and logged one line each to JobCompLoc.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.log
MinJobAge=3600
MaxArraySize=10001
ReturnToService=2
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=10
Waittime=0
$line
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 0644 "$tmp"
    if [[ -e $CONF ]] && cmp -s <(grep -v "^$MARK" "$CONF") <(grep -v "^$MARK" "$tmp"); then
        rm -f "$tmp" # unchanged: keep the old file (and its date)
    else
        mv -f "$tmp" "$CONF"
        say "wrote $CONF ($line)"
    fi
}

node_state() { sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1; }

start() {
    need_root
    install_packages
    local host
    host=$(hostname -s)
    install -d -m 0755 "$STATE" "$STATE/ctld" "$STATE/d" "$LOGS" "$RUN"
    setup_munge
    start_munge
    local old_conf new_conf
    old_conf=$(cat "$CONF" 2>/dev/null || true)
    write_config "$host"
    new_conf=$(cat "$CONF")
    local restart=0
    [[ $old_conf != "$new_conf" ]] && restart=1
    if pid=$(alive "$RUN/slurmctld.pid"); then
        if ((restart)); then
            say "config changed: reconfiguring slurmctld (pid $pid)"
            scontrol reconfigure || true
        fi
    else
        say "starting slurmctld"
        slurmctld || die "slurmctld did not start (see $LOGS/slurmctld.log)"
    fi
    if ! pid=$(alive "$RUN/slurmd.pid"); then
        say "starting slurmd"
        slurmd || die "slurmd did not start (see $LOGS/slurmd.log)"
    fi
    say "waiting for node $host to be idle"
    local state=""
    for i in $(seq 120); do
        state=$(node_state "$host")
        case $state in
        idle | mixed | allocated | completing)
            say "node $host is $state; partition $PARTITION is ready"
            sinfo
            return 0
            ;;
        down* | drain*)
            # A node restarted after a crash may come back down; it is ours, resume it.
            if ((i % 10 == 5)); then
                scontrol update NodeName="$host" State=RESUME 2>/dev/null || true
            fi
            ;;
        esac
        sleep 1
    done
    sinfo -N -l || true
    die "node $host not idle after 120 s (state: ${state:-unknown}); see $LOGS/slurmctld.log and $LOGS/slurmd.log"
}

stop_one() {
    local name=$1 pidfile=$2 pid
    if pid=$(alive "$pidfile"); then
        say "stopping $name (pid $pid)"
        kill "$pid"
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || { rm -f "$pidfile"; return 0; }
            sleep 0.1
        done
        say "$name (pid $pid) ignored SIGTERM for 10 s: SIGKILL"
        kill -9 "$pid" 2>/dev/null || true
    else
        say "$name not running"
    fi
    rm -f "$pidfile"
}

# Jobs outlive the daemons (each runs under its own slurmstepd), so cancel them first.
cancel_jobs() {
    alive "$RUN/slurmctld.pid" >/dev/null || return 0
    local jobs
    mapfile -t jobs < <(squeue -h -o %A 2>/dev/null | sort -u)
    ((${#jobs[@]})) || return 0
    say "cancelling the jobs still queued or running: ${jobs[*]} (re-run a sweep to resume it)"
    scancel "${jobs[@]}" 2>/dev/null || true
    for _ in $(seq 60); do
        [[ -z $(squeue -h -o %A 2>/dev/null) ]] && return 0
        sleep 0.5
    done
    # Steps that ignore SIGTERM past KillWait are SIGKILLed by slurmd; anything left:
    local pids
    mapfile -t pids < <(scontrol listpids 2>/dev/null | awk 'NR > 1 && $1 ~ /^[0-9]+$/ {print $1}')
    if ((${#pids[@]})); then
        say "SIGKILL to job processes still running: ${pids[*]}"
        kill -9 "${pids[@]}" 2>/dev/null || true
    fi
}

stop() {
    need_root
    cancel_jobs
    stop_one slurmd "$RUN/slurmd.pid"
    stop_one slurmctld "$RUN/slurmctld.pid"
    stop_one munged "$MUNGE_PID"
}

status() {
    local rc=0 pid
    for d in munged slurmctld slurmd; do
        local f="$RUN/$d.pid"
        [[ $d == munged ]] && f=$MUNGE_PID
        if pid=$(alive "$f"); then
            printf '%-10s running (pid %s)\n' "$d" "$pid"
        else
            printf '%-10s stopped\n' "$d"
            rc=3
        fi
    done
    if ((rc == 0)); then
        sinfo || rc=3
        squeue || rc=3
    fi
    return $rc
}

case ${1:-} in
start) start ;;
stop) stop ;;
status) status ;;
*)
    echo "usage: $0 {start|stop|status}" >&2
    exit 2
    ;;
esac
