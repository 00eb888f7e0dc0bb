#!/bin/sh
# Careline's container entry point: `python bot.py <the container's command>`.
#
# Careline reads its settings from the environment only (bot/settings.py). Compose and Swarm
# hand secrets over as files, so every file /run/secrets/CARELINE_<NAME> becomes the variable
# CARELINE_<NAME> (its trailing newline dropped) before Careline starts. Values are never
# printed.
set -eu

for secret in /run/secrets/CARELINE_*; do
    [ -f "$secret" ] || continue
    name=$(basename "$secret")
    case "$name" in
        *[!A-Z0-9_]*)
            echo "careline: ignoring secret file $name (not a CARELINE_* variable name)" >&2
            continue
            ;;
    esac
    value=$(cat "$secret")
    export "$name=$value"
done

exec python /app/bot.py "$@"
