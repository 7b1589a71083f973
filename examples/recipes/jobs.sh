#!/bin/sh
# A shell script under `shutdownbus run`: nothing needed.  Without the trap
# the shell dies of the SIGTERM it gets at once, and run stops what it left
# (its background jobs) the same way.  With the trap it cleans up first.
cleanup() {
    kill -TERM "$server" 2>/dev/null
    wait "$server"
    echo "jobs.sh: cleaned up"
    exit 0
}
trap cleanup TERM
sleep 1000 &
server=$!
echo "jobs.sh: up"
wait
