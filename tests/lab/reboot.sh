#!/bin/sh
# What a lab host's hardware does when it restarts (docs/lab.md):
#   tests/lab/reboot.sh HOST_ROOT
# Firmware staged by update packages (HOST_ROOT/var/lib/exup-lab/staged/, a mirror of paths
# relative to HOST_ROOT) becomes current: every staged file is moved over its live file. Then
# the host gets a new boot id (HOST_ROOT/proc/sys/kernel/random/boot_id), which is how
# ansible.builtin.reboot (boot_time_command: cat that file) sees that the host restarted.
# POSIX sh and coreutils only: the reboot module may run it through sh -c.
set -eu

if [ "$#" -ne 1 ] || [ -z "$1" ]; then
    echo "usage: reboot.sh HOST_ROOT" >&2
    exit 2
fi
root="${1%/}"
boot_id="$root/proc/sys/kernel/random/boot_id"
staged="$root/var/lib/exup-lab/staged"
if [ ! -f "$boot_id" ] || [ ! -d "$staged" ]; then
    echo "reboot.sh: $root is not a lab host root (no $boot_id or $staged)" >&2
    exit 1
fi

# Activate staged firmware. Paths in a lab never hold a newline, so one path per line is safe.
(cd "$staged" && find . -type f) | while IFS= read -r rel; do
    rel="${rel#./}"
    mkdir -p "$(dirname "$root/$rel")"
    mv -f "$staged/$rel" "$root/$rel"
    echo "activated $rel: $(cat "$root/$rel")"
done
rm -rf "$staged"
mkdir -p "$staged"

# A new boot id, written atomically: the kernel's own generator, else 16 random bytes.
if [ -r /proc/sys/kernel/random/uuid ]; then
    new_id="$(cat /proc/sys/kernel/random/uuid)"
else
    hex="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    new_id="$(printf '%s' "$hex" | sed 's/^\(.\{8\}\)\(.\{4\}\)\(.\{4\}\)\(.\{4\}\)/\1-\2-\3-\4-/')"
fi
printf '%s\n' "$new_id" >"$boot_id.new"
mv -f "$boot_id.new" "$boot_id"
echo "lab host ${root:-/} restarted, boot id $new_id"
exit 0
