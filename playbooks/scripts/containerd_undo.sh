# Undo the containerd configuration: put the saved files back (BACKUP) and, when anything changed or
# shimshift had restarted containerd with its config, restart containerd with the restored files and
# wait until it answers again (Docker reconnects to it by itself). systemd reloads its units first, so
# a proxy drop-in the undo removed is gone from containerd's environment. Idempotent.
# Usage: containerd_undo STATE BACKUP SECONDS   Prints "unchanged" or "undone".
state=$1 backup=$2 wait=$3
lock_state "$state"
out=$(restore_backup "$backup") || exit 20
if [ "$out" = "restored 0" ] && [ ! -e "$state/containerd-applied" ] && [ ! -e "$state/containerd-restarting" ]; then
    echo unchanged
    exit 0
fi
: >"$state/containerd-restarting" 2>/dev/null
rm -f -- "$state/containerd-applied"
systemctl daemon-reload || { echo "systemctl daemon-reload failed" >&2; exit 21; }
systemctl restart containerd || { echo "systemctl restart containerd failed" >&2; exit 21; }
wait_for "$wait" timeout 5 ctr version >/dev/null 2>&1 ||
    { echo "containerd did not come back with the restored config" >&2; exit 22; }
rm -f -- "$state/containerd-restarting"
echo undone
