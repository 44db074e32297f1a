#!/usr/bin/env bash
# shellcheck disable=SC2317,SC2329  # finish and no_container_left are called indirectly
# `make test-docker` (tests/docker/run.sh): the serving suite through a real Docker engine
# (docker backend, and the remote backend attached to a container), then Chapter 2 executed and
# graded on the docker backend and in docker compose's topology, Chapter 7's replicas as
# containers, and compose's replicas profile (two servers behind nginx), then students' notebooks
# graded in the Docker sandbox (the stand-in image holds the library, not the answers).
# `make test`'s Docker stage (tests/docker/run.sh ci): only the tests marked docker, of the serving
# suite (docker backend) and of the sandbox, and the compose profile; skipped, saying why, without
# root or dockerd.
# Starts a private engine (unless one runs already), builds the stand-in and nginx images (unless
# up to date), checks that no container of ours is left, and stops the engine it started by its pid
# whatever happens. Prints the wall time of each stage. Needs root (dockerd) and an installed .venv.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit
ENGINE=tests/docker/engine.sh
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider)
TIMES=()
MODE=${1:-all}
if [[ $MODE == ci ]]; then
    why=
    command -v dockerd >/dev/null || why="no dockerd (as root: apt-get install docker.io)"
    [[ $(id -u) == 0 ]] || why="not root (a private dockerd needs root)"
    [[ -z $why ]] || { echo "docker stage skipped: $why"; exit 0; }
fi

stage() { # stage NAME COMMAND...: run it, remember its wall time
    local name=$1 started=$SECONDS rc=0
    shift
    echo "== $name"
    "$@" || rc=$?
    TIMES+=("$(printf '%-34s %4ss  exit %s' "$name" $((SECONDS - started)) "$rc")")
    return "$rc"
}

OURS= # set when this script started the engine: then it stops it
finish() {
    if [[ -n $OURS ]]; then stage "engine stop" "$ENGINE" stop; fi
    echo "== wall time per stage"
    printf '%s\n' "${TIMES[@]}"
}
trap finish EXIT

no_container_left() {
    local left
    left=$(
        docker ps -aq --filter label=scalelab.owner
        docker ps -a --filter label=com.docker.compose.project \
            --format '{{.ID}} {{.Label "com.docker.compose.project"}}' | awk '$2 ~ /^scalelab-/ {print $1}'
    )
    [[ -z $left ]] || { echo "containers left behind: $left" >&2; docker ps -a >&2; return 1; }
}

if [[ -z $("$ENGINE" pid) ]]; then
    OURS=1
    stage "engine start" "$ENGINE" start || exit
fi
eval "$("$ENGINE" env)"
export DOCKER_HOST
export SCALELAB_SERVING_IMAGE=scalelab/serving-standin:test
stage "stand-in image build" tests/docker/build_standin_image.sh || exit
export SCALELAB_NGINX_IMAGE=scalelab/nginx:test # compose's replicas profile takes it
stage "nginx image build" tests/docker/build_nginx_image.sh || exit
export SCALELAB_SANDBOX_IMAGE=$SCALELAB_SERVING_IMAGE
status=0
COMPOSE_TEST=tests/test_chapter_backends.py::test_composes_replicas_profile_spreads_rest_and_grpc_over_both_and_rolls_a_new_version
if [[ $MODE == ci ]]; then
    # Model loading and warm-up through docker repeat in a container what the local backend
    # proves in `make test` (the same stand-in); `make test-docker` still runs them. loadgroup:
    # the sandbox's graded course is set up once, on one worker. And compose's replicas profile.
    stage "docker backend, sandbox, compose" "${PYTEST[@]}" -n 2 --dist loadgroup -m docker --durations=8 \
        tests/serving tests/grading/test_sandbox.py "$COMPOSE_TEST" \
        --ignore=tests/serving/test_loading.py --ignore=tests/serving/test_warmup.py || status=1
else
    stage "serving suite (local, remote, docker)" "${PYTEST[@]}" -n 2 tests/serving || status=1
    stage "chapters 2, 7 on docker, 2 on remote, compose" "${PYTEST[@]}" \
        tests/test_chapter_backends.py || status=1
    stage "grading in the Docker sandbox" "${PYTEST[@]}" tests/grading/test_sandbox.py ||
        status=1
fi
stage "no container left" no_container_left || status=1
exit "$status"
