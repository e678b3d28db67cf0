# Print each content blob of containerd's k8s.io namespace named in "$@", after a separator line
# naming it, in one round trip for all of them (the manifests and indexes the images step resolves).
# Usage: images_content DIGEST...
for d; do
    printf '\n--- shimshift content %s\n' "$d"
    ctr -n k8s.io content get "$d"
done
