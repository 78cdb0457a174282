#!/bin/sh
# Runs one synmon role. `exec` replaces this shell, so that the signal tini forwards
# (SIGTERM on docker stop) reaches Celery's main process and not a shell that ignores it.
set -eu
case "${1:-}" in
  worker|beat|ingest|web|flower|migrate|health|queues|sync|run|runs|stats|dlq)
    exec synmon "$@" ;;
  *)
    exec "$@" ;;
esac
