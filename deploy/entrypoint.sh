#!/bin/sh
# Reads the master passphrase from a file (a Docker/Kubernetes secret) when
# TVAULT_MASTER_PASSPHRASE_FILE is set, so it need not sit in the container's environment
# definition; then runs the command. Nothing else.
set -eu
if [ -n "${TVAULT_MASTER_PASSPHRASE_FILE:-}" ]; then
  if [ -n "${TVAULT_MASTER_PASSPHRASE:-}" ]; then
    echo "tvault-entrypoint: set TVAULT_MASTER_PASSPHRASE or TVAULT_MASTER_PASSPHRASE_FILE, not both" >&2
    exit 10
  fi
  if [ ! -r "$TVAULT_MASTER_PASSPHRASE_FILE" ]; then
    echo "tvault-entrypoint: cannot read $TVAULT_MASTER_PASSPHRASE_FILE" >&2
    exit 10
  fi
  TVAULT_MASTER_PASSPHRASE="$(cat "$TVAULT_MASTER_PASSPHRASE_FILE")"
  export TVAULT_MASTER_PASSPHRASE
  unset TVAULT_MASTER_PASSPHRASE_FILE
fi
exec "$@"
