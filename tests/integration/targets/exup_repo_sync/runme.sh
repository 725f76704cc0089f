#!/usr/bin/env bash
# exup_repo_sync, exup_package and exup_package_info against a signed feed on a real nginx and a
# real squid with Digest auth, both on 127.0.0.1 (tests/services). The feed is built with
# exup-tool (the collection's CLI); the playbook runs against localhost.
#
# ansible-test runs this from a temporary copy of the target, so the collection is found
# through ANSIBLE_COLLECTIONS_PATH (which ansible-test sets), not through relative paths.
set -eux

collections_dir=""
IFS=: read -r -a candidates <<< "${ANSIBLE_COLLECTIONS_PATH:-}"
for dir in "${candidates[@]}"; do
    if [ -d "$dir/ansible_collections/exup/fleet/tests/services" ]; then
        collections_dir="$dir"
        break
    fi
done
[ -n "$collections_dir" ] || { echo "exup.fleet with tests/services not found on ANSIBLE_COLLECTIONS_PATH" >&2; exit 1; }
export PYTHONPATH="$collections_dir${PYTHONPATH:+:$PYTHONPATH}"

work="$(mktemp -d /tmp/exup-repo-sync-XXXXXX)"
serve_pid=""
cleanup() {
    # Stop only the server helper we started (it stops nginx and squid on SIGTERM).
    if [ -n "$serve_pid" ] && kill -0 "$serve_pid" 2>/dev/null; then
        kill -TERM "$serve_pid"
        wait "$serve_pid" || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

exup_tool() {
    python -m ansible_collections.exup.fleet.plugins.module_utils._exup.vendor.cli "$@"
}

model="Express5800/R120h-1M"
other_model="Express5800/R110h-1M"

# --- the vendor side: keys, packages, a signed feed
exup_tool keygen --out "$work/keys" --name vendor
exup_tool keygen --out "$work/keys" --name stranger
mkdir -p "$work/payload/payload" "$work/packages" "$work/manual" "$work/feed"
head -c 100000 /dev/urandom > "$work/payload/payload/image.bin"
printf '#!/bin/sh\nexit 0\n' > "$work/payload/install.sh"
build() {  # build OUT_DIR PACKAGE_ID MODULE VERSION [exup-tool build flags...]
    local out="$1" id="$2" module="$3" version="$4"
    shift 4
    exup_tool build --payload "$work/payload" --key "$work/keys/vendor.key" --out "$out/$id.zip" \
        --package-id "$id" --module "$module" --version "$version" --release-date 2026-01-15 "$@"
}
for version in 1.00 1.01 1.02 1.03; do
    build "$work/packages" "system-bios-$version" system-bios "$version" --model "$model" --os any --kind bmc
done
build "$work/packages" bmc-firmware-2.00 bmc-firmware 2.00 --model "$model" --os any --kind bmc --downgrade-supported
build "$work/packages" raid-controller-3.00 raid-controller 3.00 --model "$model" --model "$other_model" --os any
# Not on the feed: added by hand, pinned; an offline package that is not auto-updated.
build "$work/manual" raid-utility-1.0.0 raid-utility 1.0.0 --model "$model" --os rhel9 --kind offline --no-auto-update
exup_tool publish --packages "$work/packages" --feed "$work/feed" --key "$work/keys/vendor.key"

# --- the servers: nginx serving the feed, squid with Digest auth
python serve.py "$work/feed" "$work/services.json" &
serve_pid=$!
for _ in $(seq 100); do
    [ -e "$work/services.json" ] && break
    kill -0 "$serve_pid"  # fails (and so the script) if the helper died
    sleep 0.1
done
[ -e "$work/services.json" ]

python - "$work" "$model" "$other_model" <<'PY'
import json, sys
work, model, other_model = sys.argv[1:]
with open(f"{work}/services.json", encoding="utf-8") as handle:
    variables = json.load(handle)
variables.update(work=work, model=model, other_model=other_model)
with open(f"{work}/vars.json", "w", encoding="utf-8") as handle:
    json.dump(variables, handle)
PY

ansible-playbook -i localhost, -c local playbook.yml -e "@$work/vars.json" "$@"
