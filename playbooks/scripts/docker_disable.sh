# Docker policy Stop: stop and disable Docker (and cri-dockerd) so it does not come back at boot.
# /var/lib/docker is kept. Usage: docker_disable
for u in cri-docker docker docker.socket; do
    systemctl stop "$u" >/dev/null 2>&1
    systemctl disable "$u" >/dev/null 2>&1
done
echo disabled
