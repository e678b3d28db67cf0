# Docker policy Stop: stop and disable Docker (and cri-dockerd) so it does not come back at boot;
# /var/lib/docker is kept. Recorded in STATE/docker-disabled, so a re-run does nothing and the undo
# enables exactly what this disabled.
# Usage: docker_disable STATE   Prints "unchanged" or "disabled".
state=$1
lock_state "$state"
if [ -e "$state/docker-disabled" ]; then echo unchanged; exit 0; fi
for u in cri-docker docker docker.socket; do
    systemctl stop "$u" >/dev/null 2>&1
    systemctl disable "$u" >/dev/null 2>&1
done
: >"$state/docker-disabled" || exit 20
echo disabled
