#!/usr/bin/env bash
# shellcheck disable=SC2317  # finish and no_container_left are called indirectly
# `make test-docker`: the serving suite through a real Docker engine (docker backend, and the
# remote backend attached to a container), then Chapter 2 executed and graded on the docker
# backend and in docker compose's topology, then students' notebooks graded in the Docker
# sandbox (the stand-in image holds the library, not the answers). Starts a private engine, builds
# the stand-in image, checks that no container of ours is left, and stops the engine by its pid whatever happens.
# Prints the wall time of each stage. Needs root (dockerd) and an installed .venv.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit
ENGINE=tests/docker/engine.sh
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider)
TIMES=()

stage() { # stage NAME COMMAND...: run it, remember its wall time
    local name=$1 started=$SECONDS rc=0
    shift
    echo "== $name"
    "$@" || rc=$?
    TIMES+=("$(printf '%-34s %4ss  exit %s' "$name" $((SECONDS - started)) "$rc")")
    return "$rc"
}

finish() {
    stage "engine stop" "$ENGINE" stop
    echo "== test-docker stages"
    printf '%s\n' "${TIMES[@]}"
}
trap finish EXIT

no_container_left() {
    local left
    left=$(docker ps -aq --filter label=scalelab.owner)
    [[ -z $left ]] || { echo "containers left behind: $left" >&2; docker ps -a >&2; return 1; }
}

stage "engine start" "$ENGINE" start || exit
eval "$("$ENGINE" env)"
export DOCKER_HOST
export SCALELAB_SERVING_IMAGE=scalelab/serving-standin:test
stage "stand-in image build" tests/docker/build_standin_image.sh || exit
status=0
stage "serving suite (local, remote, docker)" "${PYTEST[@]}" -n 2 tests/serving || status=1
stage "chapter 2 on docker and remote" "${PYTEST[@]}" tests/test_chapter2_backends.py || status=1
stage "grading in the Docker sandbox" env SCALELAB_SANDBOX_IMAGE="$SCALELAB_SERVING_IMAGE" \
    "${PYTEST[@]}" tests/grading/test_sandbox.py || status=1
stage "no container left" no_container_left || status=1
exit "$status"
