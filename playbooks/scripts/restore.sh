# Put back every path saved under DIR (see restore_backup in lib.sh).
# Usage: restore DIR
restore_backup "$1"
