#!/usr/bin/env bash
# A real Slurm cluster on this one machine, to try the batch scripts of scripts/slurm/ before a real cluster:
# munged, slurmctld and slurmd from Debian's packages (scripts/setup.sh installs them), started directly (no
# systemd), configured for what the machine has (its CPUs and memory, read at each start; no GPUs, no cgroups).
#   scripts/slurm/local-cluster.sh start [DIR]    start it (nothing to do when it runs) and print the line to eval,
#                                                 export SLURM_CONF=DIR/slurm.conf
#   scripts/slurm/local-cluster.sh status [DIR]   the daemons, the nodes and the queue; exit 0 up, 3 down
#   scripts/slurm/local-cluster.sh stop [DIR]     cancel every job, stop the daemons, leave no process behind
# Everything (configuration, munge key, state, spool, logs) lives in DIR: the argument, else $LENSFIND_SLURM_DIR,
# else /tmp/lensfind-slurm. A start is always a fresh cluster (no jobs); it chooses free ports and a cluster name
# of its own (its jobs carry it as SLURM_CLUSTER_NAME), so that several can run at once in different directories.
# LENSFIND_SLURM_NODES=N (default 1) splits the machine into N nodes of one slurmd each (HOST-1 ... HOST-N, all at
# 127.0.0.1), to try multi-node jobs. Needs root: slurmd starts the jobs' processes. Typical use:
#   eval "$(scripts/slurm/local-cluster.sh start)"; mkdir -p logs; sbatch ...; scripts/slurm/local-cluster.sh stop
set -euo pipefail

usage() { echo "usage: $0 start|stop|status [DIR]" >&2; exit 2; }
(($# >= 1 && $# <= 2)) || usage
CMD=$1
DIR=${2:-${LENSFIND_SLURM_DIR:-/tmp/lensfind-slurm}}
if [ ! -d "$DIR" ]; then
  case $CMD in
    start) mkdir -p "$DIR" ;;
    stop) echo "local-cluster: nothing in $DIR" >&2; exit 0 ;;
    status) echo "no cluster in $DIR"; exit 3 ;;
    *) usage ;;
  esac
fi
DIR=$(cd -P "$DIR" && pwd)
CONF=$DIR/slurm.conf
MUNGE_PID=$DIR/munge/munged.pid
CTLD_PID=$DIR/run/slurmctld.pid
# The daemons carry this variable (and so do their children): stop finds whatever they left by it.
MARK="LENSFIND_LOCAL_SLURM=$DIR"

say() { echo "local-cluster: $*" >&2; }
die() { say "error: $*"; exit 1; }

alive() { [ -e "/proc/$1" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; } # a zombie is gone
# The pid in a pid file when that process is alive.
live_pid() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" && echo "$pid"
}
nodes() { sed -n 's/^NodeName=\([^ ]*\).*/\1/p' "$CONF" 2>/dev/null; }
pid_files() {
  local n
  echo "$MUNGE_PID"; echo "$CTLD_PID"
  for n in $(nodes); do echo "$DIR/run/slurmd-$n.pid"; done
}
running() {
  local f
  [ -s "$CONF" ] || return 1
  for f in $(pid_files); do live_pid "$f" >/dev/null || return 1; done
}

# N distinct TCP ports in 10000-19999 that nothing uses: below the kernel's ephemeral range (no client connection
# holds them) and below 20000-39999, where the batch scripts put MASTER_PORT.
free_ports() {
  local used p n=0
  used=$(ss -Htan | awk '{k = split($4, a, ":"); print a[k]}')
  for _ in $(seq 1000); do
    p=$((10000 + RANDOM % 10000))
    grep -qx "$p" <<<"$used" && continue
    echo "$p"; used+=$'\n'"$p"; n=$((n + 1))
    ((n == $1)) && return
  done
  die "no free port found in 10000-19999"
}

# Waits up to $1 seconds for the pids that follow to end; returns 1 if some are left.
wait_gone() {
  local deadline=$((SECONDS + $1)) p left
  shift
  while :; do
    left=0
    for p in "$@"; do alive "$p" && left=1; done
    ((left == 0)) && return 0
    ((SECONDS >= deadline)) && return 1
    sleep 0.2
  done
}

# Processes of this cluster: the daemons and their children (the marker in their environment), and the jobs'
# processes (SLURM_CLUSTER_NAME); never this script or its ancestors.
leftovers() {
  local name pid env mine=" $$ " p=$$
  name=$(sed -n 's/^ClusterName=//p' "$CONF" 2>/dev/null) || true
  while p=$(awk '{print $4}' "/proc/$p/stat" 2>/dev/null) && ((p > 1)); do mine+="$p "; done
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/}; pid=${pid%/environ}
    [[ $mine == *" $pid "* ]] && continue
    alive "$pid" || continue
    if { tr '\0' '\n' <"$env"; } 2>/dev/null | grep -qxF -e "$MARK" ${name:+-e "SLURM_CLUSTER_NAME=$name"}; then
      echo "$pid"
    fi
  done
}

stop() {
  export SLURM_CONF=$CONF
  local pids=() f p jobs
  if live_pid "$CTLD_PID" >/dev/null; then
    # Cancel every job: its steps get SIGTERM, then SIGKILL after KillWait; slurmd cleans up.
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      say "cancelling jobs $(echo $jobs)"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      # squeue lists pending, running and completing jobs: wait until none is left (KillWait and some).
      for _ in $(seq 200); do
        [ -z "$(squeue -h -o %A 2>/dev/null || true)" ] && break
        sleep 0.2
      done
    fi
  fi
  for f in $(pid_files | tac); do
    p=$(live_pid "$f") || continue
    kill -TERM "$p" 2>/dev/null || true
    pids+=("$p")
  done
  if ((${#pids[@]})) && ! wait_gone 20 "${pids[@]}"; then
    kill -KILL "${pids[@]}" 2>/dev/null || true
  fi
  # Whatever is left (a job step that outlived slurmd, a task of it): TERM, then KILL.
  mapfile -t pids < <(leftovers)
  if ((${#pids[@]})); then
    say "ending leftover processes ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait_gone 10 "${pids[@]}" || kill -KILL "${pids[@]}" 2>/dev/null || true
    wait_gone 10 "${pids[@]}" || die "processes ${pids[*]} survived SIGKILL"
  fi
  rm -f "$DIR"/run/*.pid "$MUNGE_PID"
}

write_conf() {
  local count=${LENSFIND_SLURM_NODES:-1} host node ports k
  [[ $count =~ ^[1-9][0-9]*$ ]] || die "LENSFIND_SLURM_NODES=$count is not a number of nodes"
  host=$(hostname -s)
  if ((count == 1)); then
    # slurmd -C: the CPUs, their topology and the memory as slurmd sees them; but only the CPUs this process may
    # use (nproc: a container's or a cpuset's share) when slurmd sees more.
    node=$(slurmd -C | sed -n 's/^NodeName=[^ ]* //p')
    grep -q "^CPUs=$(nproc) " <<<"$node" ||
      node="CPUs=$(nproc) RealMemory=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
  else
    (($(nproc) >= count)) || die "$count nodes need at least $count CPUs; this machine has $(nproc)"
    node="CPUs=$(($(nproc) / count)) RealMemory=$(awk -v n="$count" '/^MemTotal:/ {print int($2 / 1024 / n)}' /proc/meminfo)"
  fi
  mapfile -t ports < <(free_ports $((count + 1)))
  cat >"$CONF.tmp" <<EOF
# Written by scripts/slurm/local-cluster.sh at each start; edits are lost.
ClusterName=lensfind${ports[0]}
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports[0]}
# Job ids from a random start: the batch scripts derive MASTER_PORT from the job id, and two clusters running at
# once (tests, several users) would otherwise both give their first job port 20001.
FirstJobId=$((1 + (RANDOM * 32768 + RANDOM) % 1000000))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# cred_expire: how long a requeued job waits before it may start again (default 120 seconds).
AuthInfo=socket=$DIR/munge/munge.socket,cred_expire=10
CredType=cred/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$DIR/run/slurmd-%n.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd-%n.log
# No cgroups: processes are tracked through /proc, tasks are not bound to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# Look at the queue every 2 seconds, not every minute: requeued and dependent jobs start at once.
SchedulerParameters=sched_interval=2,bf_interval=2
# Each node is what this file says, whatever slurmd detects.
SlurmdParameters=config_overrides
ReturnToService=2
# Finished jobs stay visible to scontrol for 10 minutes (there is no accounting database for sacct).
MinJobAge=600
# Seconds between the SIGTERM and the SIGKILL of a cancelled, requeued or timed-out step.
KillWait=30
EOF
  if ((count == 1)); then
    echo "NodeName=$host NodeAddr=127.0.0.1 Port=${ports[1]} $node State=UNKNOWN" >>"$CONF.tmp"
  else
    for ((k = 1; k <= count; k++)); do
      echo "NodeName=$host-$k NodeHostname=$host NodeAddr=127.0.0.1 Port=${ports[k]} $node State=UNKNOWN"
    done >>"$CONF.tmp"
  fi
  echo "PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >>"$CONF.tmp"
  mv "$CONF.tmp" "$CONF"
}

start() {
  if running; then
    say "already running in $DIR"
    echo "export SLURM_CONF=$CONF"
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "needs root: slurmd starts the jobs' processes as their users"
  local t n state=""
  for t in munged mungekey slurmctld slurmd sbatch ss; do
    command -v "$t" >/dev/null ||
      die "$t not found; install munge, slurmctld, slurmd, slurm-client and iproute2 (scripts/setup.sh)"
  done
  stop # what a half-started or killed cluster left
  # A fresh cluster each time: no jobs and no state of an earlier one (whose cluster name differs).
  rm -rf "$DIR/state" "$DIR/spool" "$DIR/run"
  mkdir -p "$DIR"/{munge,run,state,spool,log}
  # munged wants its socket's directory reachable by all and its key readable by its user alone.
  chmod 755 "$DIR" "$DIR/munge"
  [ -s "$DIR/munge/munge.key" ] || mungekey --create --keyfile="$DIR/munge/munge.key"
  chmod 600 "$DIR/munge/munge.key"
  write_conf
  export SLURM_CONF=$CONF
  env "$MARK" munged --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$MUNGE_PID" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    </dev/null >>"$DIR/log/daemons.out" 2>&1 || die "munged did not start; see $DIR/log/munged.log"
  env "$MARK" slurmctld -f "$CONF" </dev/null >>"$DIR/log/daemons.out" 2>&1 ||
    { stop; die "slurmctld did not start; see $DIR/log/slurmctld.log"; }
  for n in $(nodes); do
    mkdir -p "$DIR/spool/$n"
    env "$MARK" slurmd -f "$CONF" -N "$n" </dev/null >>"$DIR/log/daemons.out" 2>&1 ||
      { stop; die "slurmd of $n did not start; see $DIR/log/slurmd-$n.log"; }
  done
  for _ in $(seq 150); do
    state=$(sinfo -h -o %T 2>/dev/null | sort -u | tr '\n' ' ' || true)
    [ "$state" = "idle " ] && break
    sleep 0.2
  done
  if [ "$state" != "idle " ]; then
    stop
    die "the nodes did not come up (state '${state% }'); see $DIR/log/"
  fi
  say "running in $DIR: $(nodes | wc -l) node(s) of $(sed -n 's/^NodeName=.* \(CPUs=[0-9]*\).*/\1/p' "$CONF" | head -n 1)"
  echo "export SLURM_CONF=$CONF"
}

status() {
  export SLURM_CONF=$CONF
  local f p up=1 left
  [ -s "$CONF" ] || up=0
  for f in $(pid_files); do
    if p=$(live_pid "$f"); then
      echo "$(basename "$f" .pid): running (pid $p)"
    else
      echo "$(basename "$f" .pid): stopped"
      up=0
    fi
  done
  if ((up)); then
    sinfo -N -o "%N %T %c %m"
    squeue
    return 0
  fi
  mapfile -t left < <(leftovers)
  ((${#left[@]} == 0)) || echo "leftover processes: ${left[*]}"
  return 3
}

case $CMD in
  start) start ;;
  stop) stop; say "stopped ($DIR)" ;;
  status) status ;;
  *) usage ;;
esac
