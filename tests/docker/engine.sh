#!/usr/bin/env bash
# A private Docker engine for the docker-backend tests. It has its own dockerd, socket,
# bridge and state, all under one folder, so it never touches a system Docker.
#
#   tests/docker/engine.sh start   start it (nothing to do when it already runs)
#   tests/docker/engine.sh stop    remove its containers, stop it by its pid, clean up
#   tests/docker/engine.sh env     print `export DOCKER_HOST=...` (use: eval "$(... env)")
#   tests/docker/engine.sh pid     print its pid (nothing when it does not run)
#   tests/docker/engine.sh purge   stop it, then delete the folder (images included)
#
# Needs root. The folder is ${SCALELAB_DOCKER_ROOT:-/tmp/scalelab-docker}; images stay there
# between runs, so a second `start` finds the test image already built.
set -euo pipefail

ROOT=${SCALELAB_DOCKER_ROOT:-/tmp/scalelab-docker}
SOCK=$ROOT/docker.sock # keep $ROOT short: a unix socket path has at most 107 bytes
PIDFILE=$ROOT/dockerd.pid
LOG=$ROOT/dockerd.log
RUNC_ROOT=$ROOT/exec/runtime-runc/moby # where runc keeps the state of dockerd's containers
# Our own bridge (created by start, deleted by stop), not docker0: a system Docker can coexist.
# (dockerd refuses --bip together with --bridge, so start gives the bridge its address itself.)
BRIDGE=${SCALELAB_DOCKER_BRIDGE:-scalelab0}
TIMEOUT=${SCALELAB_DOCKER_TIMEOUT:-60} # seconds to wait for the engine to answer
# Candidate bridge networks; the first one no route or address on this machine overlaps wins.
CANDIDATES=(172.31.213.1/24 10.213.0.1/24 192.168.213.1/24)

docker_() { docker -H "unix://$SOCK" "$@"; }

say() { echo "engine.sh: $*" >&2; }

# True while process $1 runs (a zombie, dead but not yet reaped, does not count).
alive() { [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) =~ ^[^ZX]$ ]]; }

# The pid of our dockerd, or nothing when it is not running.
engine_pid() {
    local pid
    pid=$(cat "$PIDFILE" 2>/dev/null) || return 0
    if [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == dockerd ]] && alive "$pid"; then
        echo "$pid"
    fi
}

# A bridge address (like 172.31.213.1/24) whose network nothing on this machine uses yet.
pick_bip() {
    local cidr
    for cidr in "${CANDIDATES[@]}"; do
        # `route show match` lists every route covering the network: only `default` is fine.
        if ! ip -4 route show match "$cidr" | grep -qv '^default'; then
            echo "$cidr"
            return
        fi
    done
    say "every candidate network is in use (${CANDIDATES[*]}): edit CANDIDATES"
    return 1
}

start() {
    if [[ -n $(engine_pid) ]]; then
        say "already running (pid $(engine_pid)), DOCKER_HOST=unix://$SOCK"
        return
    fi
    if ! command -v dockerd >/dev/null; then
        if [[ $(id -u) != 0 ]]; then
            say "dockerd is not installed; as root: apt-get install -y docker.io"
            return 1
        fi
        say "installing docker.io"
        DEBIAN_FRONTEND=noninteractive apt-get install -y docker.io >&2
    fi
    if [[ $(id -u) != 0 ]]; then
        say "a private dockerd needs root (run with sudo)"
        return 1
    fi
    local bip started
    stop # clears what an engine that crashed may have left
    bip=$(pick_bip)
    mkdir -p "$ROOT"
    # Our own bridge with the chosen address; dockerd attaches containers to it.
    ip link add "$BRIDGE" type bridge
    ip addr add "$bip" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    started=$(date +%s)
    # --iptables=false: leave the host firewall alone (published ports go through
    # docker-proxy instead). setsid: Ctrl-C in the calling terminal does not reach dockerd.
    setsid dockerd \
        --data-root="$ROOT/data" --exec-root="$ROOT/exec" --pidfile="$PIDFILE" \
        -H "unix://$SOCK" --bridge="$BRIDGE" --iptables=false --ip-masq=false \
        --storage-driver=overlay2 >>"$LOG" 2>&1 </dev/null &
    until docker_ version >/dev/null 2>&1; do
        if ! alive $! || (($(date +%s) - started > TIMEOUT)); then
            say "dockerd exited or did not answer within ${TIMEOUT}s; the end of $LOG:"
            tail -n 25 "$LOG" >&2
            stop
            return 1
        fi
        sleep 0.5
    done
    remove_containers # left by an engine that crashed (dockerd keeps them as exited)
    say "running (pid $(engine_pid), bridge $BRIDGE $bip) in $(($(date +%s) - started))s," \
        "DOCKER_HOST=unix://$SOCK"
}

# Pids of our containerd and its shims: containerd* processes whose command line names $ROOT.
our_processes() {
    local dir
    for dir in /proc/[0-9]*; do
        if [[ $(cat "$dir/comm" 2>/dev/null) == containerd* ]] &&
            tr '\0' ' ' <"$dir/cmdline" 2>/dev/null | grep -qF "$ROOT/"; then
            echo "${dir#/proc/}"
        fi
    done
}

remove_containers() {
    local left
    left=$(docker_ ps -aq 2>/dev/null || true)
    if [[ -n $left ]]; then
        say "removing containers: $(echo "$left" | tr '\n' ' ')"
        # shellcheck disable=SC2086 # one id per word
        docker_ rm -f $left >/dev/null || true
    fi
}

stop() {
    local pid i id
    pid=$(engine_pid)
    if [[ -n $pid ]]; then
        remove_containers # first: dockerd would otherwise wait for each one to stop
        kill -TERM "$pid"
        for ((i = 0; i < 60; i++)); do
            alive "$pid" || break
            sleep 0.5
        done
        if alive "$pid"; then
            say "dockerd (pid $pid) ignored SIGTERM for 30s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "stopped dockerd (pid $pid)"
    fi
    # Whatever a crashed dockerd left behind: containers (runc knows them), containerd and
    # its shims, mounts, the bridge.
    for id in $(runc --root "$RUNC_ROOT" list -q 2>/dev/null); do
        say "removing leftover container $id"
        runc --root "$RUNC_ROOT" delete --force "$id" || true
    done
    for pid in $(our_processes); do
        say "killing leftover process $pid: $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)"
        kill -KILL "$pid" 2>/dev/null || true
    done
    awk -v root="$ROOT/" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" || true; done
    if ip link show "$BRIDGE" >/dev/null 2>&1; then
        ip link delete "$BRIDGE"
    fi
    rm -f "$PIDFILE" "$SOCK"
}

case ${1:-} in
start) start ;;
stop) stop ;;
env) echo "export DOCKER_HOST=unix://$SOCK" ;;
pid) engine_pid ;;
purge)
    stop
    rm -rf "$ROOT"
    ;;
*)
    echo "usage: $0 start|stop|env|pid|purge" >&2
    exit 2
    ;;
esac
