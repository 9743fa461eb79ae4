#!/usr/bin/env bash
# Single-node SLURM cluster for tests/test_workflow_slurm.py on Debian 12 (bookworm): no systemd, Docker or cgroups needed.
# Idempotent: re-running only (re)starts what is not running and re-checks health. Needs root (apt, daemons).
#
#   sudo PREFIX=/tmp/robustxai-slurm WITH_DBD=1 NGPU=2 bash .ci/slurm/setup.sh
#   source $PREFIX/env.sh        # exports SLURM_CONF and puts the srun wrapper first in PATH
#   bash .ci/slurm/teardown.sh [--wipe]
# Adapted from ../shared/reference/slurm-local.md, which explains each pitfall worked around below.
#
# WITH_DBD=1: slurmdbd + MariaDB -> real `sacct` (plugin default status command works)
# WITH_DBD=0: no accounting     -> must run snakemake with --slurm-status-command squeue
set -euo pipefail

PREFIX=${PREFIX:-/tmp/robustxai-slurm}
WITH_DBD=${WITH_DBD:-1}
NGPU=${NGPU:-2}                  # fake GPUs (gres/gpu), 0 to disable
CTLD_PORT=${CTLD_PORT:-6817}; SLURMD_PORT=${SLURMD_PORT:-6818}
DBD_PORT=${DBD_PORT:-6819};   MYSQL_PORT=${MYSQL_PORT:-3306}
NODE=$(hostname -s)
CONF=$PREFIX/etc/slurm.conf
MSOCK=$PREFIX/munge/munge.socket.2
export SLURM_CONF=$CONF
log() { printf '[setup %(%H:%M:%S)T] %s\n' -1 "$*"; }
[ "$(id -u)" = 0 ] || { echo "must run as root" >&2; exit 1; }

# wait_for <label> <seconds> <cmd...>
wait_for() {
  local label=$1 secs=$2; shift 2
  for ((i = 0; i < secs * 4; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timeout (${secs}s) waiting for: $label" >&2; return 1
}
# running <pidfile> <comm>: pidfile exists, process alive and really is <comm>
running() { local p; p=$(cat "$1" 2>/dev/null) || return 1
            [ -n "$p" ] && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "$2" ]; }
stop_pid() { local p; p=$(cat "$1" 2>/dev/null) || return 0
             running "$1" "$2" || return 0; kill "$p"
             for ((i = 0; i < 80; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.25; done
             kill -9 "$p" 2>/dev/null || true; }

# ---------------------------------------------------------------- 1. packages
pkgs=(munge slurmctld slurmd slurm-client)
[ "$WITH_DBD" = 1 ] && pkgs+=(slurmdbd mariadb-server)
missing=(); for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  # On hosts with systemd (no policy-rc.d) the packaged units may start; they use /etc paths
  # and do not conflict with the private instances below (slurmd/ctld units need /etc/slurm/slurm.conf).
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
log "slurm $(slurmctld -V | awk '{print $2}'), munge $(dpkg-query -W -f='${Version}' munge)"

# ---------------------------------------------------------------- 2. layout, munge key, fake GPUs
mkdir -p "$PREFIX"/{etc,munge,log,run,state/ctld,state/d,fakedev,bin}
chmod 755 "$PREFIX" "$PREFIX/munge"          # munged: socket dir needs o+x ("Socket is inaccessible")
[ -s "$PREFIX/munge/munge.key" ] || mungekey -c -k "$PREFIX/munge/munge.key"
chown root:root "$PREFIX/munge/munge.key"; chmod 600 "$PREFIX/munge/munge.key"

GRES_LINE=""; GRES_CONF=""
if ((NGPU > 0)); then
  # gres/gpu needs File=; slurm 22.05 drops file-less GPUs ("Removing file-less GPU").
  # Char devices (clones of /dev/null) make slurm set CUDA_VISIBLE_DEVICES=0,1,...
  ok=1
  for ((i = 0; i < NGPU; i++)); do
    f=$PREFIX/fakedev/nvidia$i
    [ -c "$f" ] || { rm -f "$f"; mknod -m 666 "$f" c 1 3 2>/dev/null || { ok=0; break; }; }
  done
  if ((ok == 0)); then   # no mknod (unprivileged container): plain files -> allocation works, no CUDA_VISIBLE_DEVICES
    log "WARN: mknod failed, using regular files for fake GPUs"
    for ((i = 0; i < NGPU; i++)); do rm -f "$PREFIX/fakedev/nvidia$i"; touch "$PREFIX/fakedev/nvidia$i"; done
  fi
  GRES_LINE="Gres=gpu:$NGPU"
  GRES_CONF="NodeName=$NODE Name=gpu File=$PREFIX/fakedev/nvidia[0-$((NGPU - 1))]"
fi

# ---------------------------------------------------------------- 3. config files
HW=$(SLURM_CONF=/dev/null slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')   # CPUs=.. ..RealMemory=..
ACCT="AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none"
if [ "$WITH_DBD" = 1 ]; then
ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# non-default munge socket must ALSO be given here, else ctld->dbd auth uses /run/munge/...
AccountingStoragePass=$MSOCK
AccountingStorageTRES=gres/gpu
JobAcctGatherType=jobacct_gather/linux"
fi
new_conf=$(cat <<EOF
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
StateSaveLocation=$PREFIX/state/ctld
SlurmdSpoolDir=$PREFIX/state/d
SlurmctldPidFile=$PREFIX/run/slurmctld.pid
SlurmdPidFile=$PREFIX/run/slurmd.pid
SlurmctldLogFile=$PREFIX/log/slurmctld.log
SlurmdLogFile=$PREFIX/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5
ReturnToService=2
MinJobAge=300
DefMemPerCPU=500
GresTypes=gpu
$ACCT
JobCompType=jobcomp/filetxt
JobCompLoc=$PREFIX/log/jobcomp.txt
NodeName=$NODE NodeAddr=127.0.0.1 $HW $GRES_LINE State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)
CONF_CHANGED=0
if [ ! -f "$CONF" ] || [ "$new_conf" != "$(cat "$CONF")" ]; then printf '%s\n' "$new_conf" >"$CONF"; CONF_CHANGED=1; fi
printf '%s\n' "$GRES_CONF" >"$PREFIX/etc/gres.conf"
if [ "$WITH_DBD" = 1 ]; then
  cat >"$PREFIX/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MSOCK
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$MYSQL_PORT
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
LogFile=$PREFIX/log/slurmdbd.log
PidFile=$PREFIX/run/slurmdbd.pid
EOF
  chmod 600 "$PREFIX/etc/slurmdbd.conf"      # slurmdbd refuses a group/world-readable conf
fi
# The jobstep plugin strips every SLURM_* var (incl. SLURM_CONF) before its nested `srun`.
# Wrapper re-adds it. Not needed if slurm.conf lives at the default /etc/slurm/slurm.conf.
cat >"$PREFIX/bin/srun" <<EOF
#!/bin/sh
export SLURM_CONF=$CONF
exec /usr/bin/srun "\$@"
EOF
chmod 755 "$PREFIX/bin/srun"
cat >"$PREFIX/env.sh" <<EOF
export SLURM_CONF=$CONF
case ":\$PATH:" in *":$PREFIX/bin:"*) ;; *) export PATH="$PREFIX/bin:\$PATH" ;; esac
EOF

# ---------------------------------------------------------------- 4. daemons
if ! running "$PREFIX/munge/munged.pid" munged; then
  log "start munged"
  munged --key-file="$PREFIX/munge/munge.key" --socket="$MSOCK" --pid-file="$PREFIX/munge/munged.pid" \
         --log-file="$PREFIX/munge/munged.log" --seed-file="$PREFIX/munge/munged.seed"
fi
wait_for munge 10 bash -c "munge -S '$MSOCK' -n | unmunge -S '$MSOCK'"

if [ "$WITH_DBD" = 1 ]; then
  MY=$PREFIX/mysql
  if [ ! -d "$MY/data/mysql" ]; then
    log "init mariadb datadir"; mkdir -p "$MY"
    mariadb-install-db --no-defaults --datadir="$MY/data" --user=root \
      --auth-root-authentication-method=socket --skip-test-db >"$PREFIX/log/mariadb-install.log" 2>&1
  fi
  if ! running "$MY/mysqld.pid" mariadbd; then
    log "start mariadbd"
    setsid mariadbd --no-defaults --datadir="$MY/data" --socket="$MY/mysqld.sock" --pid-file="$MY/mysqld.pid" \
      --port="$MYSQL_PORT" --bind-address=127.0.0.1 --user=root --log-error="$PREFIX/log/mariadb.err" \
      --innodb-buffer-pool-size=128M --innodb-lock-wait-timeout=900 </dev/null >/dev/null 2>&1 &
  fi
  wait_for mariadb 60 mariadb-admin --no-defaults -S "$MY/mysqld.sock" -u root ping
  mariadb --no-defaults -S "$MY/mysqld.sock" -u root -e "
    CREATE DATABASE IF NOT EXISTS slurm_acct_db;
    CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
    CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
  if ! running "$PREFIX/run/slurmdbd.pid" slurmdbd; then log "start slurmdbd"; slurmdbd; fi
  # slurmctld fatals ("Problem adding tres") if dbd is not reachable at first start
  wait_for slurmdbd 60 sacctmgr -n show cluster
fi

if ((CONF_CHANGED)); then   # config changed while running -> restart slurm daemons
  stop_pid "$PREFIX/run/slurmd.pid" slurmd; stop_pid "$PREFIX/run/slurmctld.pid" slurmctld
fi
if ! running "$PREFIX/run/slurmctld.pid" slurmctld; then log "start slurmctld"; slurmctld; fi
wait_for slurmctld 30 scontrol ping
if ! running "$PREFIX/run/slurmd.pid" slurmd; then log "start slurmd"; slurmd -N "$NODE"; fi

node_state() { sinfo -h -N -n "$NODE" -o %t 2>/dev/null | head -1; }
wait_for "node registered" 30 bash -c "sinfo -h -N -n '$NODE' -o %t | grep -qvE '^(unk|down|n/a)'" || true
case "$(node_state)" in
  drain*|drng*|inval*|down*) log "node state $(node_state), resuming"; scontrol update nodename="$NODE" state=resume ;;
esac
wait_for "node idle" 30 bash -c "sinfo -h -N -n '$NODE' -o %t | grep -qE '^(idle|mix|alloc)'"

# ---------------------------------------------------------------- 5. health check
log "health check"
cd "$PREFIX"
srun -N1 -n1 -t 1 hostname >/dev/null
GPUOPT=(); ((NGPU > 0)) && GPUOPT=(--gpus=1)
jid=$(sbatch --parsable -t 1 -o "$PREFIX/log/healthcheck-%j.out" "${GPUOPT[@]}" \
        --wrap 'echo host=$(hostname) gpus=${CUDA_VISIBLE_DEVICES:-none}')
wait_for "job $jid finished" 60 bash -c \
  "scontrol -o show job $jid | grep -qE 'JobState=(COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY)'"
scontrol -o show job "$jid" | grep -q 'JobState=COMPLETED' || { echo "health-check job $jid failed" >&2; exit 1; }
cat "$PREFIX/log/healthcheck-$jid.out"
if [ "$WITH_DBD" = 1 ]; then
  wait_for "sacct job $jid" 30 bash -c "sacct -n -X -j $jid -o State | grep -q COMPLETED"
  sacct -X -j "$jid" -o JobID,State,AllocTRES%45
fi
sinfo

log "ready: source $PREFIX/env.sh"
