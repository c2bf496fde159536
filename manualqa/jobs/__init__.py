"""One job lifecycle for the four kinds of background work: ingestion runs, generation runs,
training jobs and evaluation runs.

* :mod:`.models`: the abstract rows (``JobRow``, and ``CancellableJobRow`` with
  ``cancel_requested``) that hold what every job's row records: who started it, when it started,
  beat and finished, the user's message and the developer's traceback. Each job model keeps its
  own ``Status`` choices, its ``FINISHED`` statuses and its ``TRANSITIONS`` table.
* :mod:`.lifecycle`: claim a row for a worker, finish it (only in a final status), tell whether
  its worker went silent, and mark silent rows failed.
* :mod:`.runner`: the heartbeat thread, the check for a stop, and the crash branch (ERRORED with
  the traceback).
* :mod:`.views`: the status JSON a job's page polls.
"""
