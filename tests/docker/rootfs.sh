# shellcheck shell=bash
# Helpers for the test images built from this machine's files (no image is pulled): sourced by
# build_standin_image.sh and build_nginx_image.sh.

# with_links FILE: prints FILE, and each link on the way to it, with real (symlink-free) folder
# names.
with_links() {
    local f=$1 target
    while :; do
        f=$(readlink -f "$(dirname "$f")")/$(basename "$f")
        echo "$f"
        [[ -L $f ]] || return 0
        target=$(readlink "$f")
        [[ $target == /* ]] || target=$(dirname "$f")/$target
        f=$target
    done
}

# libraries [SKIP...] < FILES: the shared libraries ldd finds for the files read from stdin, each
# with the links on the way to it, except those under a SKIP prefix (shipped another way).
libraries() {
    local skip=() prefix
    for prefix in "$@"; do skip+=(-e "^$prefix"); done
    xargs ldd 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3}
        $1 ~ /^\// && $1 !~ /:$/ {print $1}' |
        { if ((${#skip[@]})); then grep -v "${skip[@]}"; else cat; fi } | sort -u |
        while read -r lib; do with_links "$lib"; done
}
