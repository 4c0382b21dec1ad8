#!/bin/sh
# Start the container's command with the secrets of environment $SLUICE_ENV in its environment.
# `sluice run` resolves every reference first (a missing secret stops here, naming it, never
# printing a value), then replaces itself with the command: the app is PID 1's exec, its
# signals and exit code are its own.
set -eu
: "${SLUICE_ENV:?set SLUICE_ENV to the environment to run in (e.g. staging)}"
exec sluice --config "${SLUICE_CONFIG:-/etc/sluice/sluice.yaml}" run --env "$SLUICE_ENV" -- "$@"
