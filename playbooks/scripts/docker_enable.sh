# Undo of docker_disable: enable Docker (and cri-dockerd) again; the switch's undo starts them.
# Usage: docker_enable STATE   Prints "unchanged" or "enabled".
state=$1
lock_state "$state"
if [ ! -e "$state/docker-disabled" ]; then echo unchanged; exit 0; fi
for u in docker.socket docker cri-docker; do
    systemctl enable "$u" >/dev/null 2>&1
done
rm -f -- "$state/docker-disabled"
echo enabled
