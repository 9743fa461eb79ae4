#!/usr/bin/env bash
# Stop the private SLURM cluster started by .ci/slurm/setup.sh (by PID files only).
#   PREFIX=/tmp/robustxai-slurm bash .ci/slurm/teardown.sh [--wipe]
set -uo pipefail
PREFIX=${PREFIX:-/tmp/robustxai-slurm}
export SLURM_CONF=$PREFIX/etc/slurm.conf

running() { local p; p=$(cat "$1" 2>/dev/null) || return 1
            [ -n "$p" ] && [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "$2" ]; }
stop_pid() {
  local p; running "$1" "$2" || { echo "$2: not running"; return 0; }
  p=$(cat "$1"); echo "stopping $2 (pid $p)"; kill "$p"
  for ((i = 0; i < 80; i++)); do kill -0 "$p" 2>/dev/null || return 0; sleep 0.25; done
  echo "$2 did not exit, SIGKILL"; kill -9 "$p" 2>/dev/null || true
}

if running "$PREFIX/run/slurmctld.pid" slurmctld; then
  ids=$(squeue -h -o %i 2>/dev/null | tr '\n' ' ')
  [ -n "${ids// /}" ] && { echo "cancel jobs: $ids"; scancel $ids; sleep 2; }
fi
stop_pid "$PREFIX/run/slurmd.pid"      slurmd
stop_pid "$PREFIX/run/slurmctld.pid"   slurmctld
stop_pid "$PREFIX/run/slurmdbd.pid"    slurmdbd
stop_pid "$PREFIX/mysql/mysqld.pid"    mariadbd
stop_pid "$PREFIX/munge/munged.pid"    munged

if [ "${1:-}" = --wipe ]; then echo "wiping $PREFIX"; rm -rf "$PREFIX"; fi
