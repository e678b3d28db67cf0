# shimshift facts probe (read-only). Takes no arguments and changes nothing on the node (its scratch
# directory under /tmp is removed on exit). Prints one record per line,
# "<key>\t<base64 of stdout>\t<exit status|missing>", which shimshift.steps.facts.parse turns into
# NodeFacts. Every command is bounded by `timeout`; the slow ones (docker, ctr) run concurrently.
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
scratch=$(mktemp -d /tmp/.shimshift-facts.XXXXXX) || exit 1
trap 'rm -rf -- "$scratch"' EXIT HUP INT TERM
echo "shimshift-facts	1"
n=0

cmd() {
    n=$((n + 1))
    printf '%s' "$1" >"$scratch/$n.key"
    shift
    (
        timeout -k 2 20 "$@" >"$scratch/$n.out" 2>/dev/null </dev/null
        echo $? >"$scratch/$n.rc"
    ) &
}

file() {
    if [ -e "$1" ]; then
        printf 'file:%s\t%s\t' "$1" "$(base64 -w0 <"$1" 2>/dev/null)"
        [ -r "$1" ] && echo 0 || echo 1
    else
        printf 'file:%s\t\tmissing\n' "$1"
    fi
}

file /etc/os-release
cmd kernel uname -r
# Each interface's name, MTU and flags: kubenet's bridge took the smallest MTU of those up.
cmd links sh -c 'for d in /sys/class/net/*; do printf "%s %s %s\n" "${d##*/}" "$(cat "$d/mtu")" "$(cat "$d/flags")"; done'
cmd docker-info docker info --format '{{json .}}'
cmd docker-images sh -c 'ids=$(docker image ls -q --no-trunc | sort -u); [ -z "$ids" ] || docker image inspect $ids'
cmd docker-containers docker ps -a --no-trunc --format '{{json .}}'
# Running containers as [name, image, restart policy, labels], one a line: the ones without the
# kubelet's labels run outside it (docker run, compose, RKE1's kubelet) and stop with Docker.
cmd docker-running sh -c 'ids=$(docker ps -q --no-trunc); [ -z "$ids" ] || docker inspect --format "$0" $ids' \
    '[{{json .Name}},{{json .Config.Image}},{{json .HostConfig.RestartPolicy.Name}},{{json .Config.Labels}}]'
cmd containerd-version containerd --version
cmd ctr-plugins ctr --connect-timeout 3s plugins ls
cmd ctr-images ctr --connect-timeout 3s -n k8s.io images ls -q
cmd crictl-version crictl --version
# containerd's default OCI spec, the base a CRI runtime's base_runtime_spec is built from
cmd ctr-oci-spec ctr oci spec
# The limits the running containerd has (its shims, and so every container, inherit them) and the
# command of its parent (dockerd when dockerd started it itself), and fs.nr_open, which systemd gives
# for LimitNOFILE=infinity. The daemon is the oldest process named containerd: this probe's own
# `containerd --version` runs at the same time under the same name.
cmd containerd-limits sh -c 'p=$(pgrep -o -x containerd) && cat "/proc/$p/limits" &&
    printf "parent %s\n" "$(ps -o comm= -p "$(ps -o ppid= -p "$p" | tr -d " ")")" &&
    printf "nr_open %s\n" "$(cat /proc/sys/fs/nr_open)"'
cmd kubelet-version kubelet --version
for unit in docker containerd kubelet cri-docker; do
    cmd "active:$unit" systemctl is-active "$unit"
done
root=/var/lib/containerd
[ -d "$root" ] || root=/var/lib
cmd "df:$root" df -P -B1 "$root"
# Docker's data root and the filesystem it is on (daemon.json data-root moves it off /var/lib).
droot=$(timeout -k 2 10 docker info --format '{{.DockerRootDir}}' 2>/dev/null)
case $droot in /*)
    cmd "dfdocker:$droot" df -P -B1 "$droot"
    # one filesystem or two: device numbers (bind mounts of one filesystem have different mount points)
    cmd "devices" stat -L -c '%d %n' "$root" "$droot" ;;
esac

# RKE1 (certificates under /etc/kubernetes/ssl), k3s and RKE2 leave these behind.
for p in /etc/kubernetes/ssl /usr/local/bin/k3s /etc/rancher/k3s /var/lib/rancher/k3s /etc/rancher/rke2 \
    /var/lib/rancher/rke2; do
    if [ -e "$p" ]; then printf 'exists:%s\t\t0\n' "$p"; else printf 'exists:%s\t\tmissing\n' "$p"; fi
done
file /etc/containerd/config.toml
file /etc/docker/daemon.json
# The binaries of daemon.json's runtimes as containerd will run them: each "path" (a runc-compatible
# binary, run by runc's shim as BinaryName, looked up in containerd's PATH), and the shim of each
# "runtimeType" and runc's own (containerd-shim-<name>-<version>, in PATH or beside containerd). Only
# the values shimshift carries are looked for (no quote, backslash or space in them); the record says
# where the executable is, or "missing".
containerd_dir=$(dirname "$(command -v containerd 2>/dev/null || echo /usr/bin/containerd)")
runtime_bin() {
    found=
    case $1 in
    /*) [ -f "$1" ] && [ -x "$1" ] && found=$1 ;;
    */*) ;;
    *)
        for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin $2; do
            if [ -f "$d/$1" ] && [ -x "$d/$1" ]; then found=$d/$1 && break; fi
        done ;;
    esac
    if [ -n "$found" ]; then
        printf 'runtime-bin:%s\t%s\t0\n' "$1" "$(printf '%s' "$found" | base64 -w0)"
    else
        printf 'runtime-bin:%s\t\tmissing\n' "$1"
    fi
}
if [ -r /etc/docker/daemon.json ]; then
    daemon=$(head -c 1048576 /etc/docker/daemon.json | tr '\n\r\t' '   ')
    printf '%s' "$daemon" | grep -o '"path"[[:space:]]*:[[:space:]]*"[^"\\[:space:]]*"' |
        sed 's/^.*"\([^"]*\)"$/\1/' | sort -u | while IFS= read -r p; do
        [ -n "$p" ] && runtime_bin "$p"
    done
    if printf '%s' "$daemon" | grep -q '"runtimes"'; then
        { echo io.containerd.runc.v2; printf '%s' "$daemon" |
            grep -o '"runtimeType"[[:space:]]*:[[:space:]]*"io\.containerd\.[a-z0-9_-]*\.v[0-9]*"' |
            sed 's/^.*"\([^"]*\)"$/\1/'; } | sort -u | while IFS= read -r t; do
            name=${t#io.containerd.}
            runtime_bin "containerd-shim-${name%.*}-${name##*.}" "$containerd_dir"
        done
    fi
fi
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
# The other files the kubelet's units read in EnvironmentFile= (the flags files are read above): a
# variable they set can put flags on its command line. Only their assignments of flags (a value that
# starts with "-") are sent, other lines blanked, so a secret such a file holds stays on the node.
envfiles=$(cat /etc/systemd/system/kubelet.service /lib/systemd/system/kubelet.service \
    /usr/lib/systemd/system/kubelet.service /etc/systemd/system/kubelet.service.d/*.conf \
    /lib/systemd/system/kubelet.service.d/*.conf /usr/lib/systemd/system/kubelet.service.d/*.conf \
    2>/dev/null | sed -n 's/^[[:space:]]*EnvironmentFile[[:space:]]*=//p' | tr ' \t' '\n\n' |
    sed 's/^-//' | grep '^/' | grep -v '[%$*?"]' | sort -u | head -n 16)
for f in $envfiles; do
    case $f in
    /var/lib/kubelet/kubeadm-flags.env | /etc/default/kubelet | /etc/sysconfig/kubelet | /etc/kubernetes/kubelet.env) ;;
    *)
        if [ -f "$f" ]; then
            printf 'envfile:%s\t%s\t' "$f" "$(head -c 65536 -- "$f" 2>/dev/null |
                sed -E "/^[[:space:]]*(export[[:space:]]+)?[A-Za-z_][A-Za-z0-9_]*=[\"']?[[:space:]]*-/!s/.*//" |
                base64 -w0)"
            [ -r "$f" ] && echo 0 || echo 1
        else
            printf 'envfile:%s\t\tmissing\n' "$f"
        fi
        ;;
    esac
done
# Docker's service environment (its HTTP proxy), the units' limits and KillMode, and their drop-ins
# wherever systemd reads them (/etc, /run, /usr/local/lib, /lib, /usr/lib).
for unit in docker containerd; do
    for d in /etc/systemd/system /run/systemd/system /usr/local/lib/systemd/system /lib/systemd/system \
        /usr/lib/systemd/system; do
        file "$d/$unit.service"
    done
done
for d in /etc/systemd/system/docker.service.d /etc/systemd/system/containerd.service.d \
    /run/systemd/system/containerd.service.d /usr/local/lib/systemd/system/containerd.service.d \
    /lib/systemd/system/containerd.service.d /usr/lib/systemd/system/containerd.service.d; do
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

# CNI: the configuration directories containerd's CRI may read (the default and any --cni-conf-dir
# of the kubelet or cri-dockerd) with the config files it loads, and the names in the plugin
# directories (the default and any --cni-bin-dir).
cniflags=$(cat /var/lib/kubelet/kubeadm-flags.env /etc/default/kubelet /etc/sysconfig/kubelet \
    /etc/kubernetes/kubelet.env /etc/systemd/system/kubelet.service.d/*.conf \
    /lib/systemd/system/kubelet.service.d/*.conf /usr/lib/systemd/system/kubelet.service.d/*.conf \
    /etc/systemd/system/kubelet.service /etc/systemd/system/cri-docker.service \
    /lib/systemd/system/cri-docker.service 2>/dev/null)
confdirs=$(printf '%s\n' "$cniflags" | grep -o -- '--cni-conf-dir[= ][^" \\]*' | cut -c16-)
bindirs=$(printf '%s\n' "$cniflags" | grep -o -- '--cni-bin-dir[= ][^" \\]*' | cut -c15- | tr ',' '\n')
for d in $(printf '%s\n' /etc/cni/net.d $confdirs | sed 's:/*$::' | sort -u); do
    case $d in /*) ;; *) continue ;; esac
    if [ -d "$d" ]; then
        names=$(cd "$d" && for f in *.conf *.conflist *.json; do [ -f "$f" ] && printf '%s\n' "$f"; done)
        printf 'cni-conf:%s\t%s\t0\n' "$d" "$(printf '%s' "$names" | base64 -w0)"
        printf '%s\n' "$names" | sort | head -n 16 | while IFS= read -r f; do
            [ -n "$f" ] && printf 'cnifile:%s\t%s\t0\n' "$d/$f" "$(head -c 65536 -- "$d/$f" | base64 -w0)"
        done
    else
        printf 'cni-conf:%s\t\tmissing\n' "$d"
    fi
done
for d in $(printf '%s\n' /opt/cni/bin $bindirs | sed 's:/*$::' | sort -u); do
    case $d in /*) ;; *) continue ;; esac
    if [ -d "$d" ]; then
        printf 'cni-bin:%s\t%s\t0\n' "$d" "$(ls -1 -- "$d" 2>/dev/null | base64 -w0)"
    else
        printf 'cni-bin:%s\t\tmissing\n' "$d"
    fi
done

if [ -d /etc/docker/certs.d ]; then
    printf 'certs-list\t%s\t0\n' "$(find /etc/docker/certs.d -mindepth 2 -maxdepth 2 -type f | base64 -w0)"
    find /etc/docker/certs.d -mindepth 2 -maxdepth 2 -type f -name '*.crt' | while IFS= read -r f; do
        file "$f"
    done
    find /etc/docker/certs.d -mindepth 2 -maxdepth 2 -type f -name '*.key' | while IFS= read -r f; do
        printf 'sha256:%s\t%s\t0\n' "$f" "$(sha256sum -- "$f" | base64 -w0)"
    done
fi
wait
i=1
while [ $i -le $n ]; do
    printf '%s\t%s\t%s\n' "$(cat "$scratch/$i.key")" "$(base64 -w0 <"$scratch/$i.out")" "$(cat "$scratch/$i.rc")"
    i=$((i + 1))
done
echo "shimshift-facts	end"
