"""A worker process for the crash test: trains half a cycle, or resumes one.

Usage: python -m tests.worker.crash_worker URL STATE_DIR crash|resume MARKER [JOB]
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

from fedgrid.worker import CycleAssignment, RetryPolicy, Worker, train
from tests.worker.sample_job import make_partition


def main() -> None:
    url, state_dir, mode, marker = sys.argv[1:5]
    name = sys.argv[5] if len(sys.argv) > 5 else "tiny"
    worker = Worker(url, state_dir=state_dir, retry=RetryPolicy(3, 0.05, 0.2))
    job = worker.new_job(name)
    first, second = make_partition(1)
    hang = threading.Event()

    def on_accepted(assignment: CycleAssignment) -> None:
        plan = assignment.plans["training_plan"].plan
        config = assignment.client_config
        if mode == "crash":
            half = train(plan, assignment.params, [first], config)
            job.save_progress(half.params)
            Path(marker).write_text(assignment.request_key)
            hang.wait()  # the test kills this process here
            return
        assert assignment.resumed and assignment.progress is not None
        rest = train(plan, assignment.progress, [second], config)
        job.report(rest.params, sample_count=16, next_cycle=False)
        Path(marker).write_text(
            json.dumps({"key": assignment.request_key, "resumed": assignment.resumed})
        )

    job.on("accepted", on_accepted)
    job.start()
    job.join(60)


if __name__ == "__main__":
    main()
