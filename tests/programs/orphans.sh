#!/bin/sh
# Twenty short-lived orphans: each subshell starts a sleep and exits at once,
# so the sleep is re-parented (to the PID namespace's init, or a subreaper)
# and exits 0.1 s later.  Then it says so and waits to be stopped.
for i in $(seq 20); do
    ( sleep 0.1 & )
done
echo "orphans made"
exec sleep 1000
