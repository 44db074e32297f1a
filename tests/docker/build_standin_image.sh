#!/usr/bin/env bash
# Builds scalelab/serving-standin:test, an image with tensorflow/serving's interface (same
# entrypoint script, env, ports, flags) whose "tensorflow_model_server" is our local stand-in,
# `python -m scalelab serve`. Nothing is pulled: the root filesystem is streamed with tar
# from this machine into `docker import`. It holds bash and a few basic commands, the Python
# the venv was made from (at its own path), the venv and src/ (moved to /opt/scalelab: the
# grading sandbox mounts a fresh /tmp, which would hide a clone made with mktemp), and the system
# libraries all of those link to. Everything in it is readable (and folders enterable) by every
# user, whatever the modes on this machine: the sandbox runs as user 65534. The venv's bin/ comes
# first on PATH, so the image is also a grading sandbox (no answers in it): `python -m scalelab
# grading sandbox-run` runs there, and the build ends by checking that it starts.
#
#   tests/docker/build_standin_image.sh          build, unless the image is up to date
#   tests/docker/build_standin_image.sh --force  build anyway
#
# Two layers: the environment (scalelab/serving-standin-base:<hash>, kept between builds and
# clones: the engine's data lives outside the clone), then src/ on top, which takes seconds.
#
# Talks to the Docker engine in DOCKER_HOST (see tests/docker/engine.sh env).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/docker/rootfs.sh
source "$REPO/tests/docker/rootfs.sh"
TAG=${SCALELAB_SERVING_IMAGE:-scalelab/serving-standin:test}
VENV=$REPO/.venv
PYTHON=$VENV/bin/python
[[ -x $PYTHON ]] || { echo "no $PYTHON: run \`make install\` first" >&2; exit 1; }
read -r PREFIX SITE < <("$PYTHON" -c 'import sys, sysconfig
print(sys.base_prefix, sysconfig.get_path("purelib"))')
STDLIB=$PREFIX/lib/python3.11
IMAGE_REPO=/opt/scalelab # where the image holds the venv and src/
for hidden in /tmp /grading /submission "$REPO"; do # the sandbox mounts over the first three
    if [[ $PREFIX/ == "$hidden"/* ]]; then
        echo "the venv's Python ($PREFIX) is under $hidden: make .venv from a Python elsewhere" >&2
        exit 1
    fi
done

# Can the sandbox start in the image: its python, as user 65534 with the sandbox's mounts?
check() {
    "$PYTHON" -c 'import sys; from scalelab.grading import sandbox
sys.exit(sandbox.cannot_start(sys.argv[1]) or None)' "$TAG"
    echo "$TAG: the grading sandbox starts (its python runs as user 65534)"
}

# What the image is made of, as hashes: the environment (Python, packages, this script), which
# the base layer holds and which rarely changes, and with it src/, which the top layer holds.
# The installed packages are known by their dist-info folder names (name-version).
environment() {
    cat "$REPO/requirements.txt" "$REPO/pyproject.toml" "$0" "$REPO/tests/docker/rootfs.sh"
    echo "$PREFIX"
    (cd "$SITE" && ls -d ./*.dist-info) # names only: the same in every clone
}
BASE_HASH=$(environment | sha256sum | cut -c1-16)
HASH=$({
    echo "$BASE_HASH"
    (cd "$REPO" && find src -type f ! -name '*.pyc' -print0 | sort -z | xargs -0 sha256sum)
} | sha256sum | cut -c1-16)
BASE=${TAG%:*}-base:$BASE_HASH
OLD_HASH=$(docker image inspect -f '{{index .Config.Labels "scalelab.standin.hash"}}' "$TAG" \
    2>/dev/null || true)
if [[ ${1:-} != --force && $OLD_HASH == "$HASH" ]]; then
    echo "$TAG is up to date (hash $HASH)"
    check
    exit 0
fi
started=$(date +%s)
REPO_RE=$(printf '%s' "${REPO#/}" | sed 's/[].[*^$\\,]/\\&/g')
# tar options shared by both layers: --transform moves the repository to $IMAGE_REPO, --mode
# opens every file to every user.
TAR=(tar --create --file=- --numeric-owner --owner=0 --group=0 --mode=go+rX
    --transform="s,^\(/\?\)$REPO_RE/,\1${IMAGE_REPO#/}/,"
    --exclude=.git --exclude='*.egg-info' --exclude=.pytest_cache --exclude=.ruff_cache)

# The top layer: src/ on the base (a container of it, src/ copied in, committed).
finish() {
    local container
    container=$(docker create "$BASE")
    "${TAR[@]}" -C / "${REPO#/}/src" | docker cp --quiet - "$container:/"
    docker commit --change "LABEL scalelab.standin.hash=$HASH" "$container" "$TAG" >/dev/null
    docker rm "$container" >/dev/null
    # Earlier builds, now untagged, and bases of other environments would keep 2-3 GB each.
    docker image prune --force --filter label=scalelab.standin.hash >/dev/null
    docker image ls --format '{{.Repository}}:{{.Tag}}' "${TAG%:*}-base" |
        { grep -vxF "$BASE" || true; } | xargs -r docker image rm >/dev/null
    echo "built $TAG (hash $HASH, $(docker image inspect -f '{{.Size}}' "$TAG" |
        awk '{printf "%.2f GB", $1 / 1e9}')) in $(($(date +%s) - started))s"
    check
}
if [[ ${1:-} != --force ]] && docker image inspect "$BASE" >/dev/null 2>&1; then
    echo "$BASE (the environment) is up to date: adding src/"
    finish
    exit 0
fi

# Small files of our own: the entrypoints, users, and empty /tmp and /models.
STAGE=$(mktemp -d) MOVED=$(mktemp -d)
trap 'rm -rf "$STAGE" "$MOVED"' EXIT
chmod 755 "$STAGE"
mkdir -p "$STAGE/usr/bin" "$STAGE/etc" "$STAGE/models" "$STAGE/tmp"
chmod 1777 "$STAGE/tmp"
# Byte for byte what tensorflow/serving's Dockerfile writes (its `echo` turns \n into newlines).
# There is no `exec`: bash stays PID 1 and ignores SIGTERM, as in the real image.
# shellcheck disable=SC2016 # the ${...} are for the container's bash
printf '%s\n' '#!/bin/bash ' '' \
    'tensorflow_model_server --port=8500 --rest_api_port=8501 --model_name=${MODEL_NAME} --model_base_path=${MODEL_BASE_PATH}/${MODEL_NAME} "$@"' \
    >"$STAGE/usr/bin/tf_serving_entrypoint.sh"
cat >"$STAGE/usr/bin/tensorflow_model_server" <<EOF
#!/bin/sh
# scalelab stand-in for TF Serving's server: the same flags, bound to all interfaces like it.
export TF_CPP_MIN_LOG_LEVEL=\${TF_CPP_MIN_LOG_LEVEL:-2} GRPC_VERBOSITY=\${GRPC_VERBOSITY:-ERROR}
export PYTHONUNBUFFERED=1
exec $IMAGE_REPO/.venv/bin/python -m scalelab serve "\$@" --scalelab_host=0.0.0.0
EOF
chmod 755 "$STAGE/usr/bin/"*
printf '%s\n' 'root:x:0:0:root:/root:/bin/bash' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh' \
    >"$STAGE/etc/passwd"
printf '%s\n' 'root:x:0:' 'nogroup:x:65534:' >"$STAGE/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$STAGE/etc/nsswitch.conf"
# The folders above the Python, as folders anyone may enter (on this machine /root may be 700).
mkdir -p "$STAGE${PREFIX%/*}"
# The files naming the repository's path (the editable install's .pth), naming the image's
# instead: streamed from $MOVED in place of the originals (file entries only: no path twice).
EXCLUDE=() MOVED_FILES=()
while IFS= read -r -d '' f; do
    moved=${IMAGE_REPO#/}${f#"$REPO"}
    mkdir -p "$MOVED/$(dirname "$moved")"
    text=$(<"$f")
    printf '%s\n' "${text//"$REPO"/$IMAGE_REPO}" >"$MOVED/$moved"
    EXCLUDE+=(--exclude="${f#/}")
    MOVED_FILES+=("$moved")
done < <(grep -lZF "$REPO" "$SITE"/*.pth "$SITE"/__editable__*.py 2>/dev/null)

# The system libraries: everything ldd finds for the commands, Python and every .so we ship.
COMMANDS=(/usr/bin/bash /usr/bin/dash /usr/bin/sh /usr/bin/env /usr/bin/cat /usr/bin/ls
    /usr/bin/sleep)
mapfile -t FILES < <(
    {
        for f in "${COMMANDS[@]}"; do with_links "$f"; done
        {
            printf '%s\n' "${COMMANDS[@]}" "$PREFIX/bin/python3.11"
            find "$PREFIX/lib" "$VENV" -path "$STDLIB/site-packages" -prune -o \
                -name '*.so*' ! -name '_tkinter*' -type f -print
        } | libraries "$PREFIX/" "$VENV/"
    } | sort -u | cut -c2- # tar wants names relative to /
)

# Stream the tree into `docker import`; no tarball is written. /bin, /lib... are the
# merged-/usr links. Left out: the Python test suite and site-packages (the venv has its
# own), tkinter, the static libpython, TensorFlow's C++ headers, VCS and tool caches, and src/
# (the top layer).
"${TAR[@]}" "${EXCLUDE[@]}" \
    --exclude="${STDLIB#/}/"{site-packages,test,idlelib,tkinter,turtledemo,ensurepip} \
    --exclude="${STDLIB#/}/"{config-3.11-x86_64-linux-gnu,lib-dynload/_tkinter*} \
    --exclude="${SITE#/}/tensorflow/include" \
    -C "$STAGE" . \
    -C / bin sbin lib lib64 "${PREFIX#/}" "${VENV#/}" "${FILES[@]}" \
    -C "$MOVED" "${MOVED_FILES[@]}" |
    docker import \
        --change 'ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]' \
        --change "ENV PATH=$IMAGE_REPO/.venv/bin:/usr/local/sbin:/usr/local/bin:/usr/bin:/bin" \
        --change 'ENV MODEL_BASE_PATH=/models' --change 'ENV MODEL_NAME=model' \
        --change 'ENV PYTHONDONTWRITEBYTECODE=1' \
        --change 'EXPOSE 8500 8501' \
        --change "LABEL scalelab.standin.base=$BASE_HASH" \
        --message "scalelab TF Serving stand-in environment from $VENV" - "$BASE" >/dev/null
echo "built $BASE (the environment) in $(($(date +%s) - started))s"
finish
