# Run several commands in one SSH round trip, one after another, each bounded by `timeout`; stop after
# the first one that fails unless it may fail. Prints one record per command that ran:
#   shimshift-batch<TAB>INDEX<TAB>EXIT<TAB>SECONDS<TAB>base64(stdout)<TAB>base64(stderr)
# then "shimshift-batch<TAB>end". Only the command marked STDIN reads this script's stdin; the others
# read /dev/null.
# Usage: batch [COUNT SECONDS STDIN MAYFAIL ARG_1..ARG_COUNT]...   (STDIN, MAYFAIL: 0 or 1)
scratch=$(mktemp -d /tmp/.shimshift-batch.XXXXXX) || exit 1
trap 'rm -rf -- "$scratch"' EXIT HUP INT TERM

# run the first $1 of the remaining arguments as one argv: only references to them ("${2}"...) go
# through eval, never their values
run_first() {
    _c=$1 _s=$2
    shift 2
    _refs='' _k=1
    while [ "$_k" -le "$_c" ]; do _refs="$_refs \"\${$_k}\""; _k=$((_k + 1)); done
    eval "timeout -k 5 \"\$_s\" $_refs"
}

i=0
while [ $# -gt 0 ]; do
    if [ $# -lt 4 ]; then echo "batch: malformed arguments" >&2; exit 2; fi
    count=$1 secs=$2 in=$3 mayfail=$4
    shift 4
    if [ "$count" -lt 1 ] || [ $# -lt "$count" ]; then echo "batch: malformed arguments" >&2; exit 2; fi
    t0=$(date +%s)
    if [ "$in" = 1 ]; then
        run_first "$count" "$secs" "$@" >"$scratch/out" 2>"$scratch/err"
    else
        run_first "$count" "$secs" "$@" >"$scratch/out" 2>"$scratch/err" </dev/null
    fi
    rc=$?
    printf 'shimshift-batch\t%s\t%s\t%s\t%s\t%s\n' "$i" "$rc" "$(($(date +%s) - t0))" \
        "$(base64 -w0 <"$scratch/out")" "$(base64 -w0 <"$scratch/err")"
    shift "$count"
    i=$((i + 1))
    [ "$rc" = 0 ] || [ "$mayfail" = 1 ] || break
done
echo "shimshift-batch	end"
