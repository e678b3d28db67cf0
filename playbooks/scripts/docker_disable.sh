# Docker policy Stop: stop and disable Docker (and cri-dockerd) so it does not come back
# at boot, then remove /var/run/docker.sock when it is still there (a stale socket of a stopped
# dockerd, or one held by docker.socket): a hostPath mount of it then finds nothing instead of a dead
# socket. Docker's own iptables chains and bridge are left alone (no flush), /var/lib/docker is kept
# (so a rollback still works). Recorded in STATE/docker-disabled (and STATE/docker-sock-removed when
# the socket existed), so a re-run does nothing and the undo enables exactly what this disabled;
# dockerd recreates its socket when the switch's undo starts it.
# Usage: docker_disable STATE   Prints "unchanged" or "disabled" (and "removed /var/run/docker.sock").
state=$1
sock=/var/run/docker.sock
lock_state "$state"
if [ -e "$state/docker-disabled" ]; then echo unchanged; exit 0; fi
for u in cri-docker docker docker.socket; do
    systemctl stop "$u" >/dev/null 2>&1
    systemctl disable "$u" >/dev/null 2>&1
done
if [ -S "$sock" ]; then
    : >"$state/docker-sock-removed" || exit 20
    rm -f -- "$sock" || exit 20
    echo "removed $sock"
fi
: >"$state/docker-disabled" || exit 20
echo disabled
