# shimshift facts probe (read-only). Takes no arguments and changes nothing on the node.
# Prints one record per line, "<key>\t<base64 of stdout>\t<exit status|missing>", which
# shimshift.planning.facts_parse turns into NodeFacts. Every command is bounded by `timeout`.
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
exec 4>&1
echo "shimshift-facts	1"

cmd() {
    key=$1
    shift
    printf '%s\t' "$key"
    rc=$({ { timeout -k 2 20 "$@" 2>/dev/null </dev/null; echo $? >&3; } | base64 -w0 >&4; } 3>&1)
    printf '\t%s\n' "$rc"
}

file() {
    if [ -e "$1" ]; then
        cmd "file:$1" cat -- "$1"
    else
        printf 'file:%s\t\tmissing\n' "$1"
    fi
}

file /etc/os-release
cmd kernel uname -r
cmd docker-info docker info --format '{{json .}}'
cmd docker-images sh -c 'ids=$(docker image ls -q --no-trunc | sort -u); [ -z "$ids" ] || docker image inspect $ids'
cmd docker-containers docker ps -a --no-trunc --format '{{json .}}'
cmd containerd-version containerd --version
cmd ctr-plugins ctr plugins ls
cmd ctr-images ctr -n k8s.io images ls -q
cmd kubelet-version kubelet --version
for unit in docker containerd kubelet cri-docker; do
    cmd "active:$unit" systemctl is-active "$unit"
done
root=/var/lib/containerd
[ -d "$root" ] || root=/var/lib
cmd "df:$root" df -P -B1 "$root"

file /etc/containerd/config.toml
file /etc/docker/daemon.json
for f in /var/lib/kubelet/kubeadm-flags.env /etc/default/kubelet /etc/sysconfig/kubelet \
    /etc/kubernetes/kubelet.env /var/lib/kubelet/instance-config.yaml \
    /etc/systemd/system/kubelet.service /lib/systemd/system/kubelet.service \
    /usr/lib/systemd/system/kubelet.service /etc/systemd/system/cri-docker.service \
    /lib/systemd/system/cri-docker.service; do
    file "$f"
done
for d in /etc/systemd/system/kubelet.service.d /lib/systemd/system/kubelet.service.d \
    /usr/lib/systemd/system/kubelet.service.d; do
    for f in "$d"/*.conf; do
        [ -e "$f" ] && file "$f"
    done
done
# The kubelet config file named by --config in any flags file or unit, else kubeadm's default.
configs=$(cat /var/lib/kubelet/kubeadm-flags.env /etc/default/kubelet /etc/sysconfig/kubelet \
    /etc/kubernetes/kubelet.env /etc/systemd/system/kubelet.service.d/*.conf \
    /lib/systemd/system/kubelet.service.d/*.conf /usr/lib/systemd/system/kubelet.service.d/*.conf \
    /etc/systemd/system/kubelet.service 2>/dev/null | grep -o -- '--config[= ][^" \\]*' | cut -c10- | sort -u)
for f in $configs /var/lib/kubelet/config.yaml; do
    case $f in /*) file "$f" ;; esac
done

if [ -d /etc/docker/certs.d ]; then
    cmd certs-list find /etc/docker/certs.d -mindepth 2 -maxdepth 2 -type f
    find /etc/docker/certs.d -mindepth 2 -maxdepth 2 -type f -name '*.crt' | while IFS= read -r f; do
        file "$f"
    done
    find /etc/docker/certs.d -mindepth 2 -maxdepth 2 -type f -name '*.key' | while IFS= read -r f; do
        cmd "sha256:$f" sha256sum -- "$f"
    done
fi
echo "shimshift-facts	end"
