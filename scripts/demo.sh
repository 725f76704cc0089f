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
# 7. a shared repository: the repository as an HTTPS service (granian) in a "DMZ" that alone reaches the feed,
#    used by two managers (playbooks/demo_shared.yml): site-dmz as its remote repository (the service downloads for
#    it), site-inner through a repository of its own chained to it (verified again); a remote delete is refused;
# 8. managed servers on the lab (scripts/demo_lab.sh): starts the test lab (tests/lab: hosts over real ssh on 127.0.1.x,
#    each with its own system root), fills a repository with the lab's signed packages, gives the group managed a
#    baseline as group vars (exup_baseline, docs/baselines.md), scans it against the baseline with
#    playbooks/scan.yml and writes the compliance report (HTML, JSON, JUnit XML: every server fails), installs the
#    agent with playbooks/agent_install.yml on every host (the VM guest, the unsupported OS and the unsupported model
#    fail with their reason), applies every update with playbooks/apply.yml in rolling waves (a canary server
#    first), restarting through ansible.builtin.reboot only where 003 §2.1.2 allows it and reading the versions
#    again after the restart, scans and reports again (every server passes), then applies again (nothing to do).
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
stop_nginx() {
    if [ -n "$NGINX_PID" ] && kill -0 "$NGINX_PID" 2>/dev/null; then
        kill -TERM "$NGINX_PID" 2>/dev/null || true
        wait "$NGINX_PID" 2>/dev/null || true
        log "nginx stopped"
    fi
    NGINX_PID=""
}
trap stop_nginx EXIT
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

# ------------------------------------------------------------------ 7. a shared repository in a "DMZ"
# The repository as an HTTPS service on 127.0.0.1 (granian; 003 §1.3, port 8080 by default, here a free one): it alone
# reaches the vendor feed. Two managers use it: site-dmz as its remote repository, site-inner through a repository of its
# own chained to it (playbooks/demo_shared.yml). There is no default password: the demo sets random ones.
SHARED="$DEMO/shared"
SERVICE_PID=""
stop_service() {
    if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
        kill -TERM "$SERVICE_PID" 2>/dev/null || true
        wait "$SERVICE_PID" 2>/dev/null || true
        log "repository service stopped"
    fi
    SERVICE_PID=""
}
trap 'stop_service; stop_nginx' EXIT
mkdir -p "$SHARED"
SERVICE_PORT="$("$EXUP_PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$EXUP_PY" - "$SHARED" "$SERVICE_PORT" "$FEED_URL" "$DEMO/keys/vendor.pub" <<'PY'
import json, secrets, sys
from pathlib import Path
from ansible_collections.exup.fleet.tests.services.tls import make_tls_files
shared, port, feed_url, key = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
(shared / 'tls').mkdir(exist_ok=True)
tls = make_tls_files(shared / 'tls')
config = {'store': str(shared / 'dmz-repo'), 'host': '127.0.0.1', 'port': port, 'tls_certificate': str(tls.cert_path),
          'tls_key': str(tls.key_path), 'feed_url': feed_url, 'trusted_keys': [key], 'manager_id': 'dmz-host', 'access_log': True}
(shared / 'service.json').write_text(json.dumps(config, indent=1))
demo_vars = {'exup_shared_url': 'https://127.0.0.1:%d' % port, 'exup_shared_ca': str(tls.ca_path),
             'exup_shared_admin_password': secrets.token_urlsafe(18), 'exup_shared_read_password': secrets.token_urlsafe(18)}
(shared / 'vars.json').write_text(json.dumps(demo_vars))
(shared / 'vars.json').chmod(0o600)
PY
log "setting the DMZ repository's passwords (exup_repo_settings; stored as Argon2id hashes)"
ansible localhost -c local -m exup.fleet.exup_repo_settings -e "@$SHARED/vars.json" \
    -a "repository=$SHARED/dmz-repo admin_password={{ exup_shared_admin_password }} read_password={{ exup_shared_read_password }}" >/dev/null
"$EXUP_PY" -m ansible_collections.exup.fleet.plugins.module_utils._exup.service.main "$SHARED/service.json" >"$SHARED/service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 200); do
    if curl -fsS -o /dev/null --cacert "$SHARED/tls/ca.pem" "https://127.0.0.1:$SERVICE_PORT/v1/openapi.json" 2>/dev/null; then break; fi
    kill -0 "$SERVICE_PID" 2>/dev/null || die "the repository service did not start: $(cat "$SHARED/service.log")"
    sleep 0.1
done
log "repository service (pid $SERVICE_PID) at https://127.0.0.1:$SERVICE_PORT"
ansible-playbook "$EXUP_ROOT/playbooks/demo_shared.yml" -e "exup_demo_dir=$DEMO" -e "@$DEMO/demo_vars.json" -e "@$SHARED/vars.json"
stop_service
echo "Shared repository: $SHARED/dmz-repo (service log $SHARED/service.log), inner repository: $SHARED/inner-repo; report: $SHARED/report.json"

# ------------------------------------------------------------------ 8. managed servers on the lab
if [ "${EXUP_DEMO_AGENT:-1}" = "1" ]; then
    stop_nginx
    bash "$EXUP_ROOT/scripts/demo_lab.sh" "$DEMO"
    echo "Demo finished in $(( $(date +%s) - t0 ))s after setup."
fi
