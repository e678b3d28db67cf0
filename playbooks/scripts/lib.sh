# shimshift node-side helpers, prepended to every playbook script. Values reach these scripts only as
# positional parameters ("$1", "$@"), never as shell text.
export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# hold the node-side lock of state directory $1 until the script exits: a step re-run after a cut
# connection waits for the first run, which may still be going on the node, instead of racing it
lock_state() {
    mkdir -p -m 0700 -- "$1" || exit 20
    exec 9>"$1/.lock" || exit 20
    flock -w 300 9 || { echo "another shimshift command still holds $1/.lock" >&2; exit 30; }
}

# unit $1 is active (quietly: some systemctl stand-ins print the state even with --quiet)
is_active() { systemctl is-active "$1" >/dev/null 2>&1; }

# sha256 of a file's bytes ("" when it cannot be read)
file_sha() { sha256sum <"$1" 2>/dev/null | cut -d' ' -f1; }

# containerd answers and its CRI plugin reports ok (a running daemon is not enough: a bad CRI config
# leaves containerd up with `cri ... error`)
cri_state() {
    timeout 5 ctr --connect-timeout 3s plugins ls 2>/dev/null |
        awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" {print $NF}'
}
cri_ok() { [ "$(cri_state)" = ok ]; }

# CRI is ok (0) or has failed for this daemon run (1: containerd reports the plugin in error, which
# does not heal without a restart); keeps waiting (2) while containerd starts up
cri_settled() {
    case $(cri_state) in
        ok) return 0 ;;
        error) return 1 ;;
        *) return 2 ;;
    esac
}

# wait up to $1 seconds for the command "$2..." to succeed
wait_for() {
    _end=$(($(date +%s) + $1))
    shift
    until "$@"; do
        [ "$(date +%s)" -lt "$_end" ] || return 1
        sleep 0.2
    done
}

# stop unit $2 if it is active, recording it under $1/stopped/ so the undo starts it again
stop_recorded() {
    mkdir -p -m 0700 -- "$1/stopped" || return 20
    if is_active "$2"; then
        : >"$1/stopped/$2" || return 20
        systemctl stop "$2" || { echo "systemctl stop $2 failed" >&2; return 21; }
    fi
}

# start unit $2 if stop_recorded stopped it
start_recorded() {
    if [ -e "$1/stopped/$2" ]; then
        systemctl start "$2" || { echo "systemctl start $2 failed" >&2; return 23; }
        rm -f -- "$1/stopped/$2"
    fi
}

# put back, byte for byte with mode, owner and times, every path saved by backup.sh under $1; a path
# that did not exist before is removed. Idempotent: a path already as saved is left alone. Prints
# "restored <n>" with the number of paths it changed.
restore_backup() {
    if [ ! -f "$1/complete" ]; then
        echo "no complete backup in $1: nothing to restore" >&2
        echo "restored 0"
        return 0
    fi
    _n=0
    for _e in "$1"/entries/*; do
        [ -f "$_e/path" ] || continue
        _p=$(cat -- "$_e/path")
        if [ -e "$_e/absent" ]; then
            [ -e "$_p" ] || [ -L "$_p" ] || continue
            rm -rf -- "$_p" || return 20
        elif [ -d "$_e/data" ] && [ ! -L "$_e/data" ]; then
            rm -rf -- "$_p.shimshift-restore" && cp -a -- "$_e/data" "$_p.shimshift-restore" &&
                rm -rf -- "$_p" && mv -- "$_p.shimshift-restore" "$_p" || return 21
        else
            if [ -f "$_p" ] && [ ! -L "$_p" ] && cmp -s -- "$_e/data" "$_p" &&
                [ "$(stat -c %a:%u:%g -- "$_e/data")" = "$(stat -c %a:%u:%g -- "$_p")" ]; then
                continue
            fi
            mkdir -p -- "$(dirname -- "$_p")" || return 22
            cp -a -- "$_e/data" "$_p.shimshift-restore" && mv -f -- "$_p.shimshift-restore" "$_p" ||
                { rm -f -- "$_p.shimshift-restore"; return 23; }
        fi
        _n=$((_n + 1))
    done
    sync
    echo "restored $_n"
}
