# Undo of docker_disable: enable Docker (and cri-dockerd) again; the switch's undo starts them, and
# dockerd recreates /var/run/docker.sock on start (said here when docker_disable had removed it).
# Usage: docker_enable STATE   Prints "unchanged" or "enabled".
state=$1
lock_state "$state"
if [ ! -e "$state/docker-disabled" ]; then echo unchanged; exit 0; fi
for u in docker.socket docker cri-docker; do
    systemctl enable "$u" >/dev/null 2>&1
done
if [ -e "$state/docker-sock-removed" ]; then
    echo "enabled docker; /var/run/docker.sock, removed by the finish step, comes back when dockerd starts"
    rm -f -- "$state/docker-sock-removed"
fi
rm -f -- "$state/docker-disabled"
echo enabled
