%%writefile {answer_job}
# Exercise 08.1: on SIGTERM, shut the pool down (waiting for the running tasks,
# cancelling the queued ones), then exit 0.
"""A batch job: 0.5 s tasks on a pool; on SIGTERM it finishes what is running and leaves."""
import signal
import sys

from helpers.pool import WorkerPool
from helpers.tasks import faults


def main(marks: str, tasks: int, workers: int) -> None:
    pool = WorkerPool(workers)

    def on_sigterm(signum, frame):
        pool.shutdown(wait=True, cancel_futures=True)  # running tasks finish, queued ones go
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    futures = [pool.submit(faults.sleep_then_mark, 0.5, f"{marks}/{i}") for i in range(tasks)]
    print("started", flush=True)
    for future in futures:
        future.result()
    pool.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
