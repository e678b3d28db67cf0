# Everything the images step needs to know what containerd's k8s.io namespace holds, in one round
# trip: `ctr images ls`, the node's architecture, and the manifests and indexes that the names without
# an image-ID name resolve through (for an index, also the manifests it lists that are in the content
# store), each after a separator line naming it. Read-only.
# Usage: images_list
set -u
ls=$(ctr -n k8s.io images ls) || exit 1
printf '%s\n' "$ls"
printf '\n--- shimshift arch %s\n' "$(uname -m)"
# the targets that no image-ID name (sha256:<64 hex>, the CRI plugin's) points at
targets=$(printf '%s\n' "$ls" | awk 'NR > 1 && $3 ~ /^sha256:/ {
    if ($1 ~ /^sha256:[0-9a-f]+$/ && length($1) == 71) id[$3] = 1; else t[$3] = 1
} END { for (d in t) if (!(d in id)) print d }' | sort)
for d in $targets; do
    blob=$(ctr -n k8s.io content get "$d" 2>/dev/null) || continue
    printf '\n--- shimshift content %s\n%s\n' "$d" "$blob"
    case $blob in *'"manifests"'*)
        for m in $(printf '%s' "$blob" | grep -o 'sha256:[0-9a-f]\{64\}' | sort -u); do
            child=$(ctr -n k8s.io content get "$m" 2>/dev/null) || continue
            printf '\n--- shimshift content %s\n%s\n' "$m" "$child"
        done ;;
    esac
done
