# Undo the switch: stop the kubelet, put its files back byte for byte from BACKUP (then daemon-reload
# when one of them is a unit file), drop staged files, then start the units the switch stopped: Docker
# first, the kubelet last. A node the switch never touched (no STATE/switch-started) is left alone, so the
# undo is idempotent.
# Usage: switch_undo STATE BACKUP TARGET...   Prints "unchanged" or "undone".
state=$1 backup=$2
shift 2
lock_state "$state"
for t do rm -f -- "$t.shimshift-new"; done
if [ ! -e "$state/switch-started" ]; then
    echo unchanged
    exit 0
fi
systemctl stop kubelet || { echo "systemctl stop kubelet failed" >&2; exit 21; }
restore_backup "$backup" >/dev/null || exit 22
# a kubelet unit or drop-in among the restored files: systemd reads it again only on daemon-reload (the
# backup says so, whatever the TARGETs of a plan made again after an operator restart)
for e in "$backup"/entries/*; do
    [ -f "$e/path" ] || continue
    case $(cat -- "$e/path") in /etc/systemd/*)
        systemctl daemon-reload || { echo "systemctl daemon-reload failed" >&2; exit 23; }
        break ;;
    esac
done
for u in docker cri-docker kubelet; do
    start_recorded "$state" "$u" || exit
done
rm -f -- "$state/switch-started" "$state/units-edited"
echo undone
