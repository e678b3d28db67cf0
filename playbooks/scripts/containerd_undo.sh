# Undo the containerd configuration: put the saved files back (BACKUP), restart containerd with them
# and wait until it answers again (Docker reconnects to it by itself).
# Usage: containerd_undo STATE BACKUP SECONDS
state=$1 backup=$2 wait=$3
restore_backup "$backup" >/dev/null || exit 20
rm -f -- "$state/containerd-applied"
systemctl restart containerd || { echo "systemctl restart containerd failed" >&2; exit 21; }
wait_for "$wait" timeout 5 ctr version >/dev/null 2>&1 ||
    { echo "containerd did not come back with the restored config" >&2; exit 22; }
echo undone
