# Undo the switch: stop the kubelet, put its files back byte for byte from BACKUP, drop staged files,
# then start the units the switch stopped: Docker first, the kubelet last.
# Usage: switch_undo STATE BACKUP TARGET...
state=$1 backup=$2
shift 2
systemctl stop kubelet || { echo "systemctl stop kubelet failed" >&2; exit 21; }
for t do rm -f -- "$t.shimshift-new"; done
restore_backup "$backup" >/dev/null || exit 22
for u in docker cri-docker kubelet; do
    start_recorded "$state" "$u" || exit
done
echo undone
