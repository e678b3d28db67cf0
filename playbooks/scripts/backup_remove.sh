# Commit: remove the backups under BACKUP (the rollback window is closed on purpose). STATE/committed
# is written first, so a run cut short leaves a node that says it was committed, and a re-run finishes
# the removal; once both hold, a re-run does nothing.
# Usage: backup_remove STATE BACKUP   Prints "unchanged" or "removed BACKUP".
state=$1 backup=$2
lock_state "$state"
if [ -e "$state/committed" ] && [ ! -e "$backup" ]; then echo unchanged; exit 0; fi
: >"$state/committed" || exit 20
rm -rf -- "$backup" || exit 20
echo "removed $backup"
