#!/bin/sh
# Background jobs (a non-interactive shell starts them ignoring SIGINT), a
# daemon that double-forks, then wait: Ctrl-C ends the shell, not its jobs.
sleep 1000 &
sleep 1001 &
"${PYTHON:-python3}" "$(dirname "$0")/daemon.py"
echo up
wait
