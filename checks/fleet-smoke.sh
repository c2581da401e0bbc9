#!/bin/sh
# A drill check of runbooks/fleet-rehearsal.toml. drctl runs it from the
# project root after the rebuild, with every stack output of the drill in
# the environment as DRCTL_OUTPUT_<STACK>_<NAME> (and DRCTL_ENV, DRCTL_REGION,
# DRCTL_RUN_ID); exit 0 passes. On AWS, curl the URL here as well.
set -eu
: "${DRCTL_OUTPUT_FLEET_URL:?the fleet stack exported no url}"
case "$DRCTL_OUTPUT_FLEET_URL" in
  http://*) ;;
  *) echo "unexpected fleet url: $DRCTL_OUTPUT_FLEET_URL" >&2; exit 1 ;;
esac
case "${DRCTL_OUTPUT_FLEET_INSTANCE_IDS:-}" in
  *i-*) ;;
  *) echo "the fleet has no instances" >&2; exit 1 ;;
esac
echo "fleet of $DRCTL_ENV serves $DRCTL_OUTPUT_FLEET_URL"
