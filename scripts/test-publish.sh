#!/usr/bin/env bash
# The built collection as Galaxy, its users and ansible-builder see it (the `publish` step of scripts/test.sh).
#
#   bash scripts/test-publish.sh                       # every part
#   bash scripts/test-publish.sh --update-changelog    # render CHANGELOG.rst from the fragments into the repo, then stop
#
# Parts (each timed; the whole 40-80 s warm on 2 busy cores, about 20 s more for a new tools venv):
#   tools      build/venv-tools: a Python >= 3.12 venv of its own with requirements-tools.txt (galaxy-importer,
#              ansible-builder 3, antsibull-docs, antsibull-changelog and the ansible-core / ansible-lint
#              galaxy-importer runs), so .venv's pins stay as they are; reinstalled only when the pins change
#   build      ansible-galaxy collection build -> build/publish/dist/exup-fleet-<version>.tar.gz
#   changelog  CHANGELOG.rst is what `antsibull-changelog release` renders for galaxy.yml's version from
#              changelogs/ (fragments not yet released) over the built collection's plugins
#   importer   galaxy-importer on the tarball, with its ansible-lint (production profile); any WARNING or
#              ERROR line fails the part
#   docs       antsibull-docs lint-collection-docs --plugin-docs on the built collection
#   ee         ansible-builder create on ee/execution-environment.yml (no image build): the context holds the
#              tarball, requirements.txt and bindep.txt; bindep selects ipmitool and curl for the image and the
#              compile profile for the builder; its introspect.py reads the installed collection's
#              meta/execution-environment.yml
#   install    the tarball installed into a fresh collections path and a fresh venv (requirements.txt and
#              ansible-core only), then tests/system/test_published_collection.py runs README.md's example
#              playbook from them against a local feed on nginx (loopback)
set -euo pipefail
# shellcheck disable=SC2034  # read by lib.sh
EXUP_LOG_TAG="publish"
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$EXUP_ROOT"

TOOLS_VENV="$EXUP_ROOT/build/venv-tools"
TOOLS_REQ="$EXUP_ROOT/requirements-tools.txt"
OUT="$EXUP_ROOT/build/publish"
TOOLS_PY="$TOOLS_VENV/bin/python"

UPDATE_CHANGELOG=""
case "${1:-}" in
    "") ;;
    --update-changelog) UPDATE_CHANGELOG=1 ;;
    *) echo "usage: bash scripts/test-publish.sh [--update-changelog]" >&2; exit 2 ;;
esac

# Tools run with the tools venv first on PATH and nothing of .venv or this checkout's collection link
# (build/env.sh exports both): what they check is the built tarball.
tools_env() {
    env --unset=PYTHONPATH --unset=ANSIBLE_COLLECTIONS_PATH --unset=VIRTUAL_ENV PATH="$TOOLS_VENV/bin:/usr/local/bin:/usr/bin:/bin" "$@"
}

# ---------------------------------------------------------------- tools venv
tools_venv() {
    local stamp="$TOOLS_VENV/.exup-requirements.sha256" want have="" base
    if ! { [ -x "$TOOLS_PY" ] && py_ok "$TOOLS_PY"; }; then
        base="$(find_python)"
        log "creating $TOOLS_VENV with $base ($("$base" -V 2>&1))"
        rm -rf "$TOOLS_VENV"
        "$base" -m venv "$TOOLS_VENV"
    fi
    want="$( { cat "$TOOLS_REQ"; "$TOOLS_PY" -VV; } | sha256sum | cut -d' ' -f1)"
    [ ! -f "$stamp" ] || have="$(cat "$stamp")"
    if [ "$want" = "$have" ]; then
        log "tools venv up to date: $TOOLS_VENV ($("$TOOLS_PY" -V 2>&1))"
        return 0
    fi
    rm -f "$stamp"
    log "installing $TOOLS_REQ into $TOOLS_VENV"
    "$TOOLS_PY" -m pip install -q --disable-pip-version-check -r "$TOOLS_REQ"
    echo "$want" > "$stamp"
}

# ---------------------------------------------------------------- build
VERSION="$(sed -n 's/^version:[[:space:]]*["'"'"']\{0,1\}\([^"'"'"' ]*\).*/\1/p' galaxy.yml | head -n1)"
[ -n "$VERSION" ] || die "no version in galaxy.yml"
TARBALL="$OUT/dist/exup-fleet-$VERSION.tar.gz"
EXTRACTED="$OUT/extracted/ansible_collections/exup/fleet"
build_tarball() {
    rm -rf "$OUT/dist" "$OUT/extracted"
    mkdir -p "$OUT/dist" "$EXTRACTED"
    tools_env ansible-galaxy collection build --force --output-path "$OUT/dist" .
    [ -f "$TARBALL" ] || die "ansible-galaxy did not write $TARBALL"
    tar -xzf "$TARBALL" -C "$EXTRACTED"
    log "built $TARBALL ($(($(wc -c <"$TARBALL") / 1024)) KiB, $(tar -tzf "$TARBALL" | wc -l) entries)"
}

# ---------------------------------------------------------------- changelog
# The release is galaxy.yml's version; until it is released (`antsibull-changelog release` in the repo),
# changelogs/changelog.yaml has no releases and the committed CHANGELOG.rst is that release rendered from
# the fragments. It is rendered in a copy: the built collection (its plugins, for "New Modules") with
# this checkout's galaxy.yml and changelogs/.
render_changelog() {   # render_changelog DEST
    local work="$OUT/changelog/ansible_collections/exup/fleet"
    rm -rf "$OUT/changelog"
    mkdir -p "$work"
    cp -a "$EXTRACTED/." "$work/"
    rm -rf "$work/changelogs" "$work/CHANGELOG.rst"
    cp -a changelogs galaxy.yml "$work/"
    (cd "$work" && tools_env ANSIBLE_COLLECTIONS_PATH="$OUT/changelog" \
        antsibull-changelog release --version "$VERSION" --date 2000-01-01) >/dev/null 2>"$OUT/changelog.log" || {
        cat "$OUT/changelog.log" >&2
        return 1
    }
    [ -f "$work/CHANGELOG.rst" ] || die "antsibull-changelog wrote no CHANGELOG.rst"
    cp "$work/CHANGELOG.rst" "$1"
}

check_changelog() {
    render_changelog "$OUT/CHANGELOG.rst"
    if ! diff -u CHANGELOG.rst "$OUT/CHANGELOG.rst" >"$OUT/changelog.diff" 2>&1; then
        head -n 60 "$OUT/changelog.diff" >&2
        log "CHANGELOG.rst is not what changelogs/ renders for $VERSION: run  bash scripts/test-publish.sh --update-changelog  and commit CHANGELOG.rst"
        return 1
    fi
    log "CHANGELOG.rst matches changelogs/ for release $VERSION ($(grep -c '^- ' CHANGELOG.rst) entries)"
}

# ---------------------------------------------------------------- galaxy-importer
run_importer() {
    local cfg="$OUT/galaxy-importer.cfg" log_file="$OUT/galaxy-importer.log" rc=0
    cat > "$cfg" <<'EOF'
[galaxy-importer]
LOG_LEVEL_MAIN = INFO
RUN_ANSIBLE_DOC = True
RUN_ANSIBLE_LINT = True
OFFLINE_ANSIBLE_LINT = True
RUN_ANSIBLE_TEST = False
RUN_FLAKE8 = False
CHECK_CHANGELOG = True
EOF
    mkdir -p "$OUT/importer-tmp"
    # (it writes importer_result.json into its working directory)
    (cd "$OUT" && tools_env GALAXY_IMPORTER_CONFIG="$cfg" GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP="$OUT/importer-tmp" \
        "$TOOLS_PY" -m galaxy_importer.main "$TARBALL") >"$log_file" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ] || grep -qE '^(WARNING|ERROR|CRITICAL):' "$log_file" \
        || ! grep -q 'Importer processing completed successfully' "$log_file"; then
        grep -E '^(WARNING|ERROR|CRITICAL)|Traceback|completed' "$log_file" | head -n 60 >&2 || :
        log "galaxy-importer failed (exit $rc; whole log: $log_file)"
        return 1
    fi
    log "galaxy-importer: $(grep -E '^Linting collection' "$log_file" || echo 'lint not run'), no warning; Importer processing completed successfully"
}

# ---------------------------------------------------------------- antsibull-docs
run_docs_lint() {
    (cd "$EXTRACTED" && tools_env antsibull-docs lint-collection-docs --plugin-docs .)
}

# ---------------------------------------------------------------- execution environment
run_ee() {
    local ctx="$OUT/ee-context" want
    cp "$TARBALL" "$OUT/exup-fleet.tar.gz"   # the file name ee/execution-environment.yml copies in
    rm -rf "$ctx"
    tools_env ansible-builder create -f ee/execution-environment.yml -c "$ctx" --output-filename Containerfile >/dev/null
    for want in Containerfile _build/collections/exup-fleet.tar.gz _build/requirements.txt _build/bindep.txt _build/requirements.yml; do
        [ -f "$ctx/$want" ] || die "ansible-builder create: no $want in $ctx"
    done
    cmp -s "$ctx/_build/collections/exup-fleet.tar.gz" "$TARBALL" || die "the EE context's tarball is not the one built"
    cmp -s "$ctx/_build/requirements.txt" requirements.txt || die "the EE context's requirements.txt differs from requirements.txt"
    cmp -s "$ctx/_build/bindep.txt" bindep.txt || die "the EE context's bindep.txt differs from bindep.txt"
    grep -q 'ansible-galaxy collection install .*-r requirements.yml' "$ctx/Containerfile" || die "the Containerfile installs no galaxy requirements"
    # bindep's own selection on an rpm platform (the image's): the runtime packages, and the compile profile
    local runtime compile
    # (bindep exits 1 when something it lists is not installed here: the list is what counts)
    runtime="$(tools_env bindep --file "$ctx/_build/bindep.txt" -l newline 2>/dev/null | sort | tr '\n' ' ' || :)"
    compile="$(tools_env bindep --file "$ctx/_build/bindep.txt" -l newline compile 2>/dev/null | sort | tr '\n' ' ' || :)"
    log "bindep on this machine ($(bindep_platforms)): image gets: $runtime; builder (compile) gets: $compile"
    [[ " $runtime " == *" ipmitool "* && " $runtime " == *" curl "* ]] || die "bindep selects neither ipmitool nor curl for the image"
    [[ " $runtime " != *" nginx "* ]] || die "bindep selects test packages for the image"
    # what the builder stage's introspect finds in the installed collection (meta/execution-environment.yml)
    local coll="$OUT/ee-introspect"
    rm -rf "$coll"
    tools_env ANSIBLE_COLLECTIONS_PATH="$coll" ansible-galaxy collection install --offline -p "$coll" "$TARBALL" >/dev/null
    tools_env "$TOOLS_PY" "$ctx/_build/scripts/introspect.py" introspect --sanitize "$coll" >"$OUT/ee-introspect.txt"
    if ! grep -q 'cryptography' "$OUT/ee-introspect.txt" || ! grep -q 'ipmitool' "$OUT/ee-introspect.txt"; then
        cat "$OUT/ee-introspect.txt" >&2
        die "introspect did not find exup.fleet's python and system requirements"
    fi
    log "ee: context $ctx ok; introspect lists $(grep -c 'exup.fleet' "$OUT/ee-introspect.txt") requirement lines from exup.fleet"
}

# ---------------------------------------------------------------- user install
USER_VENV="$OUT/venv-user"
USER_COLL="$OUT/user-collections"
install_user() {
    local base core
    base="$(find_python)"
    core="$(grep -E '^ansible-core==' "$TOOLS_REQ")"
    rm -rf "$USER_VENV" "$USER_COLL"
    "$base" -m venv "$USER_VENV"
    "$USER_VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt "$core"
    env --unset=PYTHONPATH PATH="$USER_VENV/bin:/usr/bin:/bin" ANSIBLE_COLLECTIONS_PATH="$USER_COLL" \
        ansible-galaxy collection install --offline -p "$USER_COLL" "$TARBALL" >/dev/null
    [ -f "$USER_COLL/ansible_collections/exup/fleet/MANIFEST.json" ] || die "the tarball did not install into $USER_COLL"
    core="$("$USER_VENV/bin/ansible" --version)"
    log "installed into $USER_COLL with ${core%%$'\n'*} and requirements.txt"
}

run_readme_playbook() {
    # pytest and its fixtures (nginx) come from .venv; the playbook runs from the user venv only
    EXUP_PUBLISH_VENV="$USER_VENV" EXUP_PUBLISH_COLLECTIONS="$USER_COLL" \
        "$EXUP_PY" -m pytest -q -p no:cacheprovider tests/system/test_published_collection.py
}

# ---------------------------------------------------------------- main
# lib.sh's step runs its command with errexit off: each part runs in a subshell with errexit on, so the
# first failing command ends the part (and only the part).
part() { (set -e; "$@"); }
T0=$SECONDS
step tools part tools_venv || exit 1
step build part build_tarball || exit 1
if [ -n "$UPDATE_CHANGELOG" ]; then
    step changelog part render_changelog CHANGELOG.rst || exit 1
    log "CHANGELOG.rst rendered for $VERSION from changelogs/: commit it"
    exit 0
fi
FAILED=0
for spec in "changelog check_changelog" "importer run_importer" "docs run_docs_lint" "ee run_ee" "install install_user"; do
    # shellcheck disable=SC2086  # LABEL FUNCTION
    step ${spec%% *} part ${spec#* } || FAILED=$((FAILED + 1))
done
if [ "${STEP_SUMMARY[-1]}" = "${STEP_SUMMARY[-1]/FAILED/}" ]; then
    step readme part run_readme_playbook || FAILED=$((FAILED + 1))
else
    log "SKIP readme: the install part failed"
fi
printf '\n==== publish parts (%ss in all)\n' "$((SECONDS - T0))" >&2
for line in "${STEP_SUMMARY[@]}"; do printf '  %s\n' "$line" >&2; done
[ "$FAILED" -eq 0 ] || die "$FAILED publish part(s) failed"
