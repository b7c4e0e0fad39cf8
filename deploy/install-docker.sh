#!/usr/bin/env bash
# Install what the compose stack and its e2e test need on a Debian 12 host:
# docker.io (dockerd 20.10) and mmdebstrap from bookworm, and docker-compose v2
# from trixie. trixie is used through a private apt configuration (its own
# source list, lists and cache), so the host's apt never sees that suite and
# nothing else gets upgraded. Nothing is started: the test starts dockerd itself.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}"
fi

if ! /usr/libexec/docker/cli-plugins/docker-compose version >/dev/null 2>&1; then
  priv=$(mktemp -d /tmp/schedcp-apt.XXXXXX)
  trap 'rm -rf "$priv"' EXIT
  mkdir -p "$priv/lists/partial" "$priv/cache/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" > "$priv/sources.list"
  opts=(-o "Dir::Etc::SourceList=$priv/sources.list" -o "Dir::Etc::SourceParts=-"
        -o "Dir::State::Lists=$priv/lists" -o "Dir::Cache=$priv/cache")
  apt-get "${opts[@]}" update -qq
  (cd "$priv" && apt-get "${opts[@]}" download docker-compose)
  # A static Go binary: unpack it rather than let dpkg weigh trixie's dependencies.
  dpkg-deb -x "$priv"/docker-compose_*.deb "$priv/root"
  install -D -m 0755 "$priv/root/usr/libexec/docker/cli-plugins/docker-compose" \
    /usr/libexec/docker/cli-plugins/docker-compose
fi
/usr/sbin/dockerd --version
/usr/libexec/docker/cli-plugins/docker-compose version
