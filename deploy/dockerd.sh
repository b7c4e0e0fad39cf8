#!/usr/bin/env bash
# Start or stop a private dockerd for the compose stack and its e2e test:
# its own data root, socket and pidfile, so it never touches another daemon.
#   deploy/dockerd.sh start   -> prints the DOCKER_HOST to use
#   deploy/dockerd.sh stop
# Env: SCHEDCP_DEPLOY_CACHE (default <repo>/.cache/deploy).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${SCHEDCP_DEPLOY_CACHE:-$PWD/.cache/deploy}
RUN=$CACHE/dockerd
PIDFILE=$RUN/dockerd.pid
SOCK=$RUN/docker.sock
mkdir -p "$RUN"
case "${1:-}" in
  start)
    if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
      echo "unix://$SOCK"; exit 0
    fi
    # setsid: the daemon must outlive the shell that started it.
    setsid /usr/sbin/dockerd --data-root "$CACHE/docker-root" --exec-root "$RUN/exec" -H "unix://$SOCK" \
      -p "$PIDFILE" --bridge=none --iptables=false --ip-masq=false \
      >"$RUN/dockerd.log" 2>&1 < /dev/null &
    for _ in $(seq 1 120); do
      if /usr/bin/docker -H "unix://$SOCK" version >/dev/null 2>&1; then echo "unix://$SOCK"; exit 0; fi
      sleep 0.5
    done
    echo "dockerd did not come up; see $RUN/dockerd.log" >&2; tail -20 "$RUN/dockerd.log" >&2; exit 1 ;;
  stop)
    [ -s "$PIDFILE" ] || exit 0
    pid=$(cat "$PIDFILE")
    kill -TERM "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.5; done
    kill -KILL "$pid" 2>/dev/null || true ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
