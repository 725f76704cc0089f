#!/bin/sh
# A lab host's login (docs/lab.md "What a host sees"): the lab's sshd runs it as the ForceCommand
# of every session to that host's address:
#   tests/lab/login.sh HOST_ROOT VIEW_CONF
# The session gets its own mount namespace (unshare --mount, private propagation: nothing here is
# seen by the machine or by other sessions, and it ends with the session), the few read-only system
# folders VIEW_CONF lists are bind-mounted into HOST_ROOT, and the client's command
# ($SSH_ORIGINAL_COMMAND, or a login shell) runs chrooted there. So a lab host sees its own files
# and what Ansible sends it, not the controller's repository, keys or collection.
# VIEW_CONF lines (paths hold no white space; the lab checks):
#   ro SOURCE TARGET     bind SOURCE read-only at HOST_ROOT/TARGET (TARGET relative, must exist)
#   dev TARGET           the machine's /dev (recursive bind) at HOST_ROOT/TARGET
#   proc STASH           a real /proc at HOST_ROOT/proc, with the host's own proc/sys/kernel/random
#                        (its fake boot id) kept over it; STASH is an empty folder used on the way
# Fails closed: any step that fails ends the session before anything runs.
set -eu

if [ "${1:-}" != "--inside" ]; then
    if [ "$#" -ne 2 ] || [ ! -d "$1" ] || [ ! -f "$2" ]; then
        echo "login.sh: usage: login.sh HOST_ROOT VIEW_CONF" >&2
        exit 2
    fi
    exec unshare --mount --propagation private -- /bin/sh "$0" --inside "$@"
fi
root="${2%/}"
conf="$3"

while read -r kind source target; do
    case "$kind" in
        ''|'#'*) ;;
        ro) mount --bind -o ro "$source" "$root/$target" ;;
        dev) mount --rbind -o ro /dev "$root/$source" ;;
        proc)
            # The host's boot id lives in its own proc/sys/kernel/random (the lab's restart rewrites it):
            # park that folder, mount the real /proc (processes, /proc/self), put the folder back over it.
            mount --bind "$root/proc/sys/kernel/random" "$source"
            mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
            mount --bind "$source" "$root/proc/sys/kernel/random"
            umount "$source"
            ;;
        *) echo "login.sh: unknown line in $conf: $kind" >&2; exit 2 ;;
    esac
done <"$conf"

# The single-quoted scripts are expanded by the shell inside the chroot ($HOME, the client's command).
# shellcheck disable=SC2016
if [ -n "${SSH_ORIGINAL_COMMAND:-}" ]; then
    exec chroot "$root" /bin/sh -c 'cd "$HOME" 2>/dev/null || cd /; eval "$SSH_ORIGINAL_COMMAND"'
fi
# shellcheck disable=SC2016
exec chroot "$root" /bin/sh -c 'cd "$HOME" 2>/dev/null || cd /; exec /bin/sh -l'
