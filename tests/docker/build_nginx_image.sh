#!/usr/bin/env bash
# Builds scalelab/nginx:test, an image that runs Debian's nginx (installed with apt if missing) as
# the official nginx image runs its own: `nginx -g 'daemon off;'` with /etc/nginx/nginx.conf.
# docker-compose.yml's replicas profile takes it in place of nginx:1.27 (SCALELAB_NGINX_IMAGE),
# since nothing may be pulled here. Like build_standin_image.sh, the root filesystem is streamed
# from this machine into `docker import`: nginx, the libraries it links to, a shell, and the
# users, folders and mime types it expects.
#
#   tests/docker/build_nginx_image.sh   build, unless the image is up to date
#
# Talks to the Docker engine in DOCKER_HOST (see tests/docker/engine.sh env).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=tests/docker/rootfs.sh
source "$REPO/tests/docker/rootfs.sh"
TAG=${SCALELAB_NGINX_IMAGE:-scalelab/nginx:test}
NGINX=/usr/sbin/nginx
if [[ ! -x $NGINX ]]; then
    [[ $(id -u) == 0 ]] || { echo "nginx is not installed: apt-get install nginx" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null
fi
HASH=$({ cat "$0" "$REPO/tests/docker/rootfs.sh"; "$NGINX" -V 2>&1; } | sha256sum | cut -c1-16)
if [[ $(docker image inspect -f '{{index .Config.Labels "scalelab.nginx.hash"}}' "$TAG" \
    2>/dev/null) == "$HASH" ]]; then
    echo "$TAG is up to date (hash $HASH)"
    exit 0
fi
started=$(date +%s)
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
chmod 755 "$STAGE"
# What nginx opens before it reads its configuration (its compiled-in log and temporary
# folders), a world-writable /tmp, and the users its workers may run as.
mkdir -p "$STAGE/etc/nginx" "$STAGE/var/log/nginx" "$STAGE/var/lib/nginx" "$STAGE/tmp" \
    "$STAGE/run"
chmod 1777 "$STAGE/tmp"
cp /etc/nginx/mime.types "$STAGE/etc/nginx/"
# A default configuration, for `docker run` without one (compose mounts its own over it).
printf '%s\n' 'pid /tmp/nginx.pid;' 'error_log stderr;' 'events {}' \
    'http { access_log off; server { listen 80; return 200 "nginx\n"; } }' \
    >"$STAGE/etc/nginx/nginx.conf"
printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'www-data:x:33:33:www-data:/var/www:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/sh' >"$STAGE/etc/passwd"
printf '%s\n' 'root:x:0:' 'www-data:x:33:' 'nogroup:x:65534:' >"$STAGE/etc/group"
printf '%s\n' 'passwd: files' 'group: files' 'hosts: files dns' >"$STAGE/etc/nsswitch.conf"
COMMANDS=("$NGINX" /usr/bin/dash /usr/bin/sh)
mapfile -t FILES < <({
    for f in "${COMMANDS[@]}"; do with_links "$f"; done
    # shellcheck disable=SC2119 # no prefix to skip
    printf '%s\n' "${COMMANDS[@]}" | libraries
} | sort -u | cut -c2-)
tar --create --file=- --numeric-owner --owner=0 --group=0 --mode=go+rX \
    -C "$STAGE" . -C / bin sbin lib lib64 "${FILES[@]}" |
    docker import \
        --change 'CMD ["nginx", "-g", "daemon off;"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'EXPOSE 80' \
        --change "LABEL scalelab.nginx.hash=$HASH" \
        --message "Debian's nginx from this machine ($("$NGINX" -v 2>&1))" - "$TAG" >/dev/null
docker image prune --force --filter label=scalelab.nginx.hash >/dev/null
echo "built $TAG (hash $HASH) in $(($(date +%s) - started))s"
