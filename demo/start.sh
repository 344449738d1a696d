#!/bin/sh
# The demo container's entrypoint: prepare a data directory, then start the
# server, which binds port 80, gives the directory to nobody and drops root.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
data=${DEMO_DATA:-/tmp/capprof-demo/data}
rm -rf "$data"
mkdir -p "$data"
exec "$here/../bin/web-server" serve "$data"
