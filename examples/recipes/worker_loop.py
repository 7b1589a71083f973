"""A worker loop that finishes the job in hand before it stops (Celery-style).

``join(interrupt_main=False)``: a stop interrupts nothing; the loop looks at
``stop_requested()`` between jobs and waits for the next job with
``wait_for_stop(timeout)``, so an idle worker stops at once and a busy one
after its current job (within its stop budget; past it, its parent
escalates, as for any process).
"""

import time

import shutdownbus


def next_job(number: int) -> float:
    return 0.3  # a job's length: stands in for a queue


def run_job(number: int, seconds: float) -> None:
    time.sleep(seconds)  # the work; not interrupted by a stop
    print(f"worker: finished job {number}", flush=True)


if __name__ == "__main__":
    shutdownbus.join(interrupt_main=False)
    shutdownbus.ready()
    number = 0
    while not shutdownbus.stop_requested():
        number += 1
        print(f"worker: started job {number}", flush=True)
        run_job(number, next_job(number))
        shutdownbus.wait_for_stop(0.01)  # between jobs: a moment to see a stop
    print(f"worker: stopped after {number} job(s)", flush=True)
