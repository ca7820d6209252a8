#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, for the `slurm` tests and for trying
# `hydra/launcher=stratos_slurm` without a cluster.
#
#   launchers/slurm_cluster.sh install   # apt-get slurm-wlm + munge (+ mariadb/slurmdbd with accounting)
#   launchers/slurm_cluster.sh start     # write /etc/slurm/slurm.conf, start munged, slurmctld, slurmd
#   launchers/slurm_cluster.sh status    # exit 0 when the partition is up, 3 when not
#   launchers/slurm_cluster.sh stop      # scancel, wait for squeue to drain, stop daemons by PID
#   launchers/slurm_cluster.sh up        # install + start (what CI calls)
#
# Environment:
#   STRATOS_SLURM_DIR         state, spool, logs and PID files     (default /var/lib/stratos-slurm)
#   STRATOS_SLURM_PARTITION   partition name                       (default debug)
#   STRATOS_SLURM_ACCOUNTING  1 (default) => mariadb + slurmdbd, so `sacct` reports real job
#                             states. 0 => none: ~25 s less to install and ~2 s less to start,
#                             but submitit then sees every job as UNKNOWN and waits *forever* on a
#                             job that died without writing its result (kill -9, OOM, node loss).
#
# There is no systemd here: daemons are started by hand, their PIDs recorded under
# $STRATOS_SLURM_DIR/pids, and stopped by those PIDs only. Every command is idempotent and runs
# without stdin (CI=true). Pitfalls this avoids are listed in shared/NOTES.md ("Slurm on one
# machine"): no cgroup.conf, node geometry copied from `slurmd -C`, task/affinity, linuxproc.
set -euo pipefail

DIR=${STRATOS_SLURM_DIR:-/var/lib/stratos-slurm}
PARTITION=${STRATOS_SLURM_PARTITION:-debug}
ACCOUNTING=${STRATOS_SLURM_ACCOUNTING:-1}
CLUSTER=stratos
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by stratos launchers/slurm_cluster.sh"
PIDS=$DIR/pids

log() { echo "[slurm_cluster] $*" >&2; }
die() { log "error: $*"; exit 1; }

need_root() {
  [ "$(id -u)" = 0 ] || die "must run as root to $1 (daemons and /etc/slurm); not root here"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
pid_of() { cat "$PIDS/$1.pid" 2>/dev/null || true; }

# ------------------------------------------------------------------ install
cmd_install() {
  local pkgs=(slurm-wlm munge)
  [ "$ACCOUNTING" = 1 ] && pkgs+=(slurmdbd mariadb-server)
  local missing=()
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} = 0 ]; then log "installed already: ${pkgs[*]}"; return 0; fi
  need_root "install ${missing[*]}"
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Debian's postinst scripts start each daemon through its init script (slurmctld without a
  # config, mariadb as a service): a policy-rc.d that answers 101 ("not allowed") stops that;
  # this script starts and records its own daemons. Removed again unless it was there before.
  local policy=/usr/sbin/policy-rc.d made_policy=0
  if [ ! -e $policy ]; then printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy && made_policy=1; fi
  # An update only when the package lists are empty or do not know the package: it is slow.
  if ! apt-cache show "${missing[0]}" >/dev/null 2>&1; then apt-get update -qq; fi
  local rc=0
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
    || rc=$?
  [ $made_policy = 1 ] && rm -f $policy
  [ $rc = 0 ] || die "apt-get install ${missing[*]} failed (rc=$rc)"
  log "installed: ${missing[*]}"
}

# ------------------------------------------------------------------ config
write_conf() {  # write_conf FIRST_JOB_ID
  local first=${1:-1} host geom mem
  host=$(hostname -s)
  # `slurmd -C` prints e.g. "NodeName=vm CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2
  # ThreadsPerCore=1 RealMemory=24105": a node line that disagrees with it drains the node.
  geom=$(slurmd -C | head -1 | tr ' ' '\n' | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
  mem=$(slurmd -C | head -1 | tr ' ' '\n' | sed -n 's/^RealMemory=//p')
  # Keep 1 GiB back for the daemons, so `--mem` requests cannot promise all of it.
  mem=$(( mem > 2048 ? mem - 1024 : mem ))
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script: refusing to overwrite a real cluster's config"
  fi
  mkdir -p "$CONF_DIR" "$DIR/state" "$DIR/spool" "$DIR/log" "$PIDS"
  local acct="AccountingStorageType=accounting_storage/none"
  if [ "$ACCOUNTING" = 1 ]; then
    acct="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$host
JobAcctGatherType=jobacct_gather/linux"
  fi
  local tmp=$CONF.tmp.$$
  cat >"$tmp" <<EOF
$MARK
# Single-node cluster for Stratos tests. No cgroup.conf on purpose (see shared/NOTES.md).
ClusterName=$CLUSTER
# Job ids continue after the accounting database's last one: `slurmctld -c` would restart
# them at 1 and sacct would then mix this run's job N with an older job N.
FirstJobId=$first
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/affinity
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
# Seconds between SIGTERM and SIGKILL when a job is cancelled, requeued or times out.
KillWait=15
MinJobAge=600
InactiveLimit=0
SlurmctldTimeout=60
SlurmdTimeout=120
$acct
JobCompType=jobcomp/none
NodeName=$host NodeAddr=127.0.0.1 ${geom}RealMemory=$mem State=UNKNOWN
PartitionName=$PARTITION Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  mv "$tmp" "$CONF"
  # Debian's plugstack.conf includes an empty directory; harmless, left as is.
}

# ------------------------------------------------------------------ munge
start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then log "munged answering already"; return 0; fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
  fi
  chown munge:munge /etc/munge/munge.key
  chmod 0400 /etc/munge/munge.key
  rm -f /run/munge/munged.pid
  # munged refuses to run as root: drop to its own user.
  setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged
  local i
  for i in $(seq 1 50); do
    if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
      cp /run/munge/munged.pid "$PIDS/munged.pid"
      log "munged up (pid $(pid_of munged))"
      return 0
    fi
    sleep 0.1
  done
  die "munged did not answer 'munge -n | unmunge' within 5 s (see /var/log/munge/munged.log)"
}

# ------------------------------------------------------------------ accounting (optional)
start_accounting() {
  [ "$ACCOUNTING" = 1 ] || return 0
  local sock=/run/mysqld/mysqld.sock
  if ! mysqladmin --socket=$sock ping >/dev/null 2>&1; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    [ -d /var/lib/mysql/mysql ] || mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
    setpriv --reuid=mysql --regid=mysql --init-groups \
      /usr/sbin/mariadbd --datadir=/var/lib/mysql --socket=$sock --pid-file=/run/mysqld/mariadbd.pid \
      --skip-networking >"$DIR/log/mariadb.log" 2>&1 &
    local i
    for i in $(seq 1 100); do mysqladmin --socket=$sock ping >/dev/null 2>&1 && break; sleep 0.1; done
    mysqladmin --socket=$sock ping >/dev/null 2>&1 || die "mariadb did not start (see $DIR/log/mariadb.log)"
    cp /run/mysqld/mariadbd.pid "$PIDS/mariadbd.pid"
  fi
  mysql --socket=$sock -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'stratos';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARK
AuthType=auth/munge
DbdHost=$(hostname -s)
SlurmUser=root
DebugLevel=info
LogFile=$DIR/log/slurmdbd.log
PidFile=$PIDS/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=stratos
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$CONF_DIR/slurmdbd.conf"
  if ! alive "$(pid_of slurmdbd)"; then
    /usr/sbin/slurmdbd
    local i
    for i in $(seq 1 100); do sacctmgr -n list cluster >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
  log "accounting up (slurmdbd pid $(pid_of slurmdbd))"
}

# ------------------------------------------------------------------ start / status / stop
partition_up() {
  local state
  state=$(sinfo -h -p "$PARTITION" -o '%T' 2>/dev/null | head -1) || return 1
  case "$state" in idle*|mix*|alloc*|completing*) return 0 ;; *) return 1 ;; esac
}

cmd_start() {
  command -v slurmctld >/dev/null || die "slurm is not installed: run '$0 install' (as root) first"
  # Up means usable: with accounting on, sacct must answer too (a dead mariadb makes submitit hang).
  if alive "$(pid_of slurmctld)" && alive "$(pid_of slurmd)" && partition_up \
      && { [ "$ACCOUNTING" != 1 ] || sacct -n -X -S now >/dev/null 2>&1; }; then
    log "already running: partition '$PARTITION' up"; return 0
  fi
  need_root "start the Slurm daemons"
  # Half-up (one daemon died, stale PID files): stop what is left, then start clean.
  stop_daemons
  write_conf 1
  start_munge
  start_accounting
  if [ "$ACCOUNTING" = 1 ]; then
    local last
    last=$(sacct -n -X -a -S 2000-01-01 -E now -o JobIDRaw 2>/dev/null | grep -oE '^[0-9]+' | sort -n | tail -1) \
      || last=0  # a new database has no jobs (grep finds nothing)
    write_conf $(( ${last:-0} + 1 ))
  fi
  # -c: clean state. A single-node test cluster has nothing worth recovering, and recovered
  # jobs from a previous machine/run would hold the node.
  /usr/sbin/slurmctld -c
  /usr/sbin/slurmd
  local i node
  node=$(hostname -s)
  for i in $(seq 1 150); do
    partition_up && break
    # A node left DOWN/DRAIN by an unclean stop comes back with a resume.
    if [ $((i % 20)) = 0 ]; then scontrol update nodename="$node" state=resume >/dev/null 2>&1 || true; fi
    sleep 0.2
  done
  partition_up || { tail -5 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true; die "partition '$PARTITION' not up after 30 s"; }
  log "up: partition '$PARTITION' on $node ($(sinfo -h -p "$PARTITION" -o '%c CPUs %m MB'))"
}

cmd_status() {
  local d rc=0
  for d in munged slurmdbd slurmctld slurmd; do
    local p; p=$(pid_of $d)
    if alive "$p"; then echo "$d: running (pid $p)"; else echo "$d: stopped"; fi
  done
  if command -v sinfo >/dev/null && partition_up; then
    sinfo -p "$PARTITION"; squeue
  else
    echo "partition '$PARTITION': not up"; rc=3
  fi
  # Accounting: slurmdbd outlives a dead mariadbd and only logs "Can't connect"; sacct then fails, job states
  # read UNKNOWN and submitit cannot tell a finished job. Check the whole chain, not just the daemons.
  if alive "$(pid_of slurmdbd)" && ! sacct -n -X -S now >/dev/null 2>&1; then
    echo "accounting: sacct fails (is mariadbd running?)"; rc=3
  fi
  return $rc
}

stop_pids() {  # stop_pids NAME...: SIGTERM to all at once, wait up to 10 s, then SIGKILL
  local name p i pids=() names=()
  for name in "$@"; do
    p=$(pid_of "$name")
    if alive "$p"; then kill "$p" 2>/dev/null || true; pids+=("$p"); names+=("$name"); fi
    rm -f "$PIDS/$name.pid"
  done
  [ ${#pids[@]} = 0 ] && return 0
  for i in $(seq 1 100); do
    local left=0
    for p in "${pids[@]}"; do alive "$p" && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    if alive "${pids[$i]}"; then log "${names[$i]} (pid ${pids[$i]}) ignored SIGTERM: SIGKILL"; kill -9 "${pids[$i]}" 2>/dev/null || true; fi
    log "stopped ${names[$i]} (pid ${pids[$i]})"
  done
}

stop_daemons() {
  stop_pids slurmd slurmctld
  stop_pids slurmdbd  # after slurmctld, which sends it the last job records
}

cmd_stop() {
  if alive "$(pid_of slurmctld)"; then
    # Cancel first and wait for the queue to drain, else slurmstepd processes outlive slurmd.
    local jobs i
    jobs=$(squeue -h -o '%A' 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      log "cancelling jobs: $(echo $jobs)"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for i in $(seq 1 300); do [ -z "$(squeue -h -o '%A' 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  stop_daemons
  # mariadbd and munged: only when this script started them (their PID files are ours).
  stop_pids mariadbd munged
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  up) cmd_install && cmd_start ;;
  status) cmd_status ;;
  stop) cmd_stop ;;
  restart) cmd_stop && cmd_start ;;
  *) echo "usage: $0 {install|start|up|status|stop|restart}" >&2; exit 2 ;;
esac
