#!/usr/bin/env bash
# The exup.fleet demo, on the embedded default repository (a directory plus SQLite):
#
#   bash scripts/demo.sh
#
# 1. installs what it needs (scripts/setup.sh: venv, ansible-core, nginx ...);
# 2. as the vendor: creates an Ed25519 signing key and a synthetic signed feed (a few hundred
#    packages for several models) plus a list of managed servers;
# 3. as an attacker: alters one package the servers need after it was signed, and re-signs the
#    catalog only, so the download matches the catalog and only the package's signature can catch it;
# 4. serves the feed over real HTTP with nginx on 127.0.0.1 (stopped on exit);
# 5. runs playbooks/demo_sync.yml: exup.fleet.exup_repo_sync (check mode, then for real),
#    exup.fleet.exup_package (add files by hand, delete), exup.fleet.exup_package_info, and a
#    second sync that finds the feed unchanged (HTTP 304);
# 6. prints what was downloaded, kept (by component and model, with generations), refused and why,
#    and the events;
# 7. managed servers: starts the test lab (tests/lab: hosts over real ssh on 127.0.1.x, each with its
#    own system root), fills a repository with the lab's signed packages, installs the agent with
#    playbooks/agent_install.yml on every host (the VM guest, the unsupported OS and the unsupported
#    model fail with their reason), applies every update with playbooks/apply.yml (reboots through
#    ansible.builtin.reboot only where 003 §2.1.2 allows it), then applies again (nothing to do).
#    The lab is stopped on exit. EXUP_DEMO_AGENT=0 skips this part.
#
# Everything goes under build/demo (recreated on each run). Knobs: EXUP_DEMO_ENTRIES (feed size,
# default 300, at least 200) and EXUP_DEMO_SERVERS (managed servers, default 12, at least 3). nginx's config and logs stay in
# build/demo/nginx after the run.
set -euo pipefail
# EXUP_LOG_TAG is read by log() in scripts/lib.sh.
# shellcheck disable=SC2034
EXUP_LOG_TAG=demo
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$EXUP_ROOT"

ENTRIES="${EXUP_DEMO_ENTRIES:-300}"
SERVERS="${EXUP_DEMO_SERVERS:-12}"
DEMO="$EXUP_ROOT/build/demo"
TOOL="$EXUP_ROOT/scripts/exup-tool"

bash "$EXUP_ROOT/scripts/setup.sh"
export PATH="$EXUP_VENV/bin:$PATH"
export ANSIBLE_COLLECTIONS_PATH="$EXUP_COLLECTIONS"
export PYTHONPATH="$EXUP_COLLECTIONS${PYTHONPATH:+:$PYTHONPATH}"
export ANSIBLE_NOCOLOR="${ANSIBLE_NOCOLOR:-1}"
# The play targets the implicit localhost on purpose (it runs modules with this venv's Python).
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False
t0=$(date +%s)

NGINX_PID=""
LAB_DIR="$EXUP_ROOT/build/demo/lab"
stop_lab() {
    if [ -f "$LAB_DIR/lab.json" ]; then
        "$EXUP_PY" "$EXUP_ROOT/tests/lab/lab.py" down --dir "$LAB_DIR" >/dev/null 2>&1 || true
    fi
}
stop_nginx() {
    if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -TERM "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        log "nginx stopped"
    fi
    NGINX_PID=""
}
trap 'stop_nginx; stop_lab' EXIT
trap 'exit 130' INT TERM

rm -rf "$DEMO"
mkdir -p "$DEMO"

# ------------------------------------------------------------------ 2. the vendor: key and feed
log "creating a signing key and a synthetic feed of $ENTRIES packages"
"$TOOL" keygen --out "$DEMO/keys" --name vendor >"$DEMO/keygen.json"
"$TOOL" synth --feed "$DEMO/feed" --key "$DEMO/keys/vendor.key" --entries "$ENTRIES" \
    --servers "$SERVERS" --servers-out "$DEMO/servers-synth.json" >"$DEMO/synth.json"
"$TOOL" schema --out "$DEMO/feed/schemas" >/dev/null

# ------------------------------------------------------------------ 3. the attacker: one altered package
"$EXUP_PY" "$EXUP_ROOT/scripts/demo_helper.py" prepare --feed "$DEMO/feed" --key "$DEMO/keys/vendor.key" \
    --servers-in "$DEMO/servers-synth.json" --vars-out "$DEMO/demo_vars.json" >"$DEMO/prepare.json"
log "altered package after signing: $("$EXUP_PY" -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["tampered"], "(" + d["altered_file"] + ")")' "$DEMO/prepare.json")"

# ------------------------------------------------------------------ 4. nginx on 127.0.0.1
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
[ -x "$NGINX" ] || die "nginx not found (scripts/setup.sh installs it)"
PORT="$("$EXUP_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
NG="$DEMO/nginx"
mkdir -p "$NG"
user_line=""
[ "$(id -u)" -ne 0 ] || user_line="user root;"   # workers as root may read build/demo wherever the repo lives
cat >"$NG/nginx.conf" <<EOF
# Private nginx of the demo: serves $DEMO/feed as static files (ETag, Last-Modified, ranges are defaults).
daemon off;
worker_processes 1;
$user_line
pid $NG/nginx.pid;
error_log $NG/error.log;
events { worker_connections 256; }
http {
    types { application/json json; application/zip zip; application/xml xsd; }
    default_type application/octet-stream;
    sendfile on;
    access_log $NG/access.log;
    client_body_temp_path $NG/tmp;
    proxy_temp_path $NG/tmp;
    fastcgi_temp_path $NG/tmp;
    uwsgi_temp_path $NG/tmp;
    scgi_temp_path $NG/tmp;
    server {
        listen 127.0.0.1:$PORT;
        root $DEMO/feed;
    }
}
EOF
"$NGINX" -p "$NG" -c "$NG/nginx.conf" -e "$NG/error.log" &
NGINX_PID=$!
FEED_URL="http://127.0.0.1:$PORT/catalog.json"
for _ in $(seq 100); do
    if curl -fsS -o /dev/null "$FEED_URL" 2>/dev/null; then break; fi
    kill -0 "$NGINX_PID" 2>/dev/null || die "nginx did not start: $(cat "$NG/error.log" 2>/dev/null)"
    sleep 0.1
done
curl -fsS -o /dev/null "$FEED_URL" || die "nginx does not serve $FEED_URL: $(cat "$NG/error.log" 2>/dev/null)"
log "feed served by nginx (pid $NGINX_PID) at $FEED_URL"

# ------------------------------------------------------------------ 5. the playbook
ansible-playbook "$EXUP_ROOT/playbooks/demo_sync.yml" -e "exup_demo_dir=$DEMO" -e "@$DEMO/demo_vars.json" \
    -e "exup_feed_url=$FEED_URL"

# ------------------------------------------------------------------ 6. summary
"$EXUP_PY" "$EXUP_ROOT/scripts/demo_helper.py" summary --report "$DEMO/report.json"
requests=$(wc -l <"$NG/access.log")
not_modified=$(grep -c '"GET /catalog.json?[^"]*" 304 ' "$NG/access.log" || true)
echo "nginx served $requests requests; catalog answered 304 Not Modified $not_modified time(s)."
echo "Repository: $DEMO/repo (repo.db, pool/sha256/...); report: $DEMO/report.json"
echo "Demo finished in $(( $(date +%s) - t0 ))s after setup."

# ------------------------------------------------------------------ 7. managed servers on the lab
if [ "${EXUP_DEMO_AGENT:-1}" = "1" ]; then
    stop_nginx
    log "starting the lab of managed servers (tests/lab, docs/lab.md)"
    "$EXUP_PY" "$EXUP_ROOT/tests/lab/lab.py" up --dir "$LAB_DIR" --hosts demo
    "$EXUP_PY" "$EXUP_ROOT/tests/lab/lab.py" repo --dir "$LAB_DIR" --path "$DEMO/lab-repo"
    export ANSIBLE_CONFIG="$LAB_DIR/ansible.cfg"
    common=(-e "exup_repository=$DEMO/lab-repo" -e "{\"exup_trusted_keys\": [\"$LAB_DIR/keys/vendor.pem\"]}")
    log "installing the agent on every lab server (003 §3.8); the unsupported ones fail with their reason"
    ansible-playbook "$EXUP_ROOT/playbooks/agent_install.yml" "${common[@]}" \
        -e target=managed:vm_guests:unsupported_os:unsupported_model -e agent_license_accepted=true -e agent_fail_on_error=false
    log "applying every update to the managed servers, rebooting where allowed (003 §2.1.2)"
    ansible-playbook "$EXUP_ROOT/playbooks/apply.yml" "${common[@]}" -e target=managed -e apply_allow_reboot=true
    log "applying again: nothing is left to do"
    ansible-playbook "$EXUP_ROOT/playbooks/apply.yml" "${common[@]}" -e target=managed -e apply_status_filter=all
    echo "Lab: $LAB_DIR (inventory.yml, hosts/<name>/ system roots); lab repository: $DEMO/lab-repo"
    echo "Demo finished in $(( $(date +%s) - t0 ))s after setup."
fi
