# Restart containerd when its config or one of its drop-ins (DROPIN..., containerd.service.d files:
# the proxy's and the limits') changed since shimshift last applied them, then require the CRI plugin to report ok. systemd
# reloads its units first, so a new or changed drop-in is what containerd restarts with. The applied
# files' sha256 is kept in STATE/containerd-applied, so a re-run on a configured node restarts nothing.
# Usage: containerd_apply STATE CONFIG SECONDS DROPIN...   Prints "unchanged" or "restarted".
state=$1 config=$2 wait=$3
shift 3
lock_state "$state"
sum=$(file_sha "$config")
for dropin in "$@"; do
    if [ -n "$sum" ] && [ -e "$dropin" ]; then
        sum="$sum $(file_sha "$dropin")"
    fi
done
if [ -n "$sum" ] && [ "$(cat -- "$state/containerd-applied" 2>/dev/null)" = "$sum" ] && cri_ok; then
    echo unchanged
    exit 0
fi
mkdir -p -m 0700 -- "$state" || exit 20
rm -f -- "$state/containerd-applied"
# from here on the running containerd may not be the one Docker started with: the undo must restart it
: >"$state/containerd-restarting" || exit 20
systemctl daemon-reload || { echo "systemctl daemon-reload failed" >&2; exit 21; }
systemctl restart containerd || { echo "systemctl restart containerd failed" >&2; exit 21; }
end=$(($(date +%s) + wait))
while :; do
    cri_settled
    case $? in 0 | 1) break ;; esac
    [ "$(date +%s)" -lt "$end" ] || break
    sleep 0.2
done
if ! cri_ok; then
    detail=$(timeout 5 ctr plugins ls -d id==cri 2>&1 | tail -n 5)
    echo "containerd's CRI plugin is not ok after the restart with the new config: $detail" >&2
    exit 22
fi
printf '%s\n' "$sum" >"$state/containerd-applied"
rm -f -- "$state/containerd-restarting"
echo restarted
