# Switch the kubelet to its new runtime: stop the kubelet, stop Docker's Kubernetes containers and the
# Docker services, move the staged kubelet files (TARGET.shimshift-new, uploaded and checked before)
# into place (then `systemctl daemon-reload` when one is a unit file under /etc/systemd), start the
# kubelet. Units it stops are recorded under STATE/stopped/ so the undo starts exactly those. A node already switched (each TARGET has its SHA256, the kubelet runs, Docker does
# not) is left alone.
# GRACE bounds how long Docker's remaining Kubernetes containers (DaemonSet pods; the node was drained)
# get to stop before they are killed.
# Usage: switch STATE SECONDS GRACE TARGET SHA256 [TARGET SHA256 ...]   Prints "unchanged" or "switched".
state=$1 wait=$2 grace=$3
shift 3
lock_state "$state"
switched=yes t=
for a do
    if [ -z "$t" ]; then t=$a; else [ "$(file_sha "$t")" = "$a" ] || switched=no; t=; fi
done
if [ $switched = yes ] && is_active kubelet && ! is_active docker; then
    echo unchanged
    exit 0
fi
mkdir -p -m 0700 -- "$state" && : >"$state/switch-started" || exit 20
stop_recorded "$state" kubelet || exit
if is_active docker; then
    ids=$(timeout 20 docker ps -q --filter name=^k8s_ 2>/dev/null)
    [ -z "$ids" ] || timeout $((grace + 30)) docker stop -t "$grace" $ids >/dev/null 2>&1
fi
stop_recorded "$state" cri-docker || exit
stop_recorded "$state" docker || exit
for a do
    case $a in /etc/systemd/*) : >"$state/units-edited" || exit 20 ;; esac
done
while [ $# -gt 0 ]; do
    t=$1 s=$2
    shift 2
    if [ -e "$t.shimshift-new" ]; then
        [ "$(file_sha "$t.shimshift-new")" = "$s" ] ||
            { echo "staged $t.shimshift-new does not match; re-run the step" >&2; exit 22; }
        mv -f -- "$t.shimshift-new" "$t" || exit 23
    elif [ "$(file_sha "$t")" != "$s" ]; then
        echo "$t is neither staged nor switched; re-run the step" >&2
        exit 22
    fi
done
sync
# a kubelet unit or drop-in was edited: systemd reads it again only on daemon-reload
# (a re-run after a cut connection knows it from STATE, whatever the TARGETs of its plan)
if [ -e "$state/units-edited" ]; then
    systemctl daemon-reload || { echo "systemctl daemon-reload failed" >&2; exit 26; }
fi
systemctl start kubelet || { echo "systemctl start kubelet failed" >&2; exit 24; }
wait_for "$wait" is_active kubelet ||
    { echo "the kubelet did not stay up on the new runtime" >&2; exit 25; }
echo switched
