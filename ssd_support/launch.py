"""torchrun that exits 130 when training stopped cleanly on a signal, as the single-process train.py does.

torchrun (torch.distributed.run) exits 1 for any stop of its workers: when a worker exits non-zero it raises
ChildFailedError, and when the launcher itself receives SIGINT/SIGTERM (Ctrl-C, scancel, a preemption) it
forwards the signal to every worker, waits ``--shutdown_timeout`` seconds (30 by default) for them, then raises
SignalException; both end in a traceback and exit status 1 (torch/distributed/launcher/api.py,
launch_agent). A scheduler that requeues preempted jobs then reads a clean stop, checkpoint written, as a crash.

This runs torchrun itself, in this process and with its own arguments, and changes only the exit status: each
rank of train.py writes the status it exits with into a folder this launcher names (SSD_EXIT_STATUS_DIR); when
every local rank exited 130 (it finished its step, rank 0 saved, then it left), this exits 130 with one line
instead of the traceback. Anything else (a crash, a rank killed after the timeout) is torchrun's own report
and status::

    python -m ssd_support.launch --nproc_per_node=4 train.py --data-folder data/voc --amp --batch-size 8
"""

import os
import sys
import tempfile

from ssd_support.distributed import EXIT_STATUS_DIR_VARIABLE, STOPPED_EXIT_CODE


def read_exit_statuses(folder):
    """The exit statuses the ranks of this machine wrote (report_exit_status).

    :param folder: the SSD_EXIT_STATUS_DIR folder
    :return: dict local rank (int) -> exit status (int); a rank that was killed, or crashed before writing, is absent
    """
    statuses = {}
    for name in os.listdir(folder):
        if name.startswith("rank") and name[4:].isdigit():
            with open(os.path.join(folder, name)) as file:
                text = file.read().strip()
            if text.lstrip("-").isdigit():
                statuses[int(name[4:])] = int(text)
    return statuses


def stopped_cleanly(statuses, n_local_ranks):
    """Whether every one of the ``n_local_ranks`` workers exited with the stop status (130).

    :param statuses: dict local rank -> exit status (read_exit_statuses)
    :param n_local_ranks: the number of workers torchrun started on this machine (--nproc_per_node)
    """
    return n_local_ranks > 0 and all(statuses.get(rank) == STOPPED_EXIT_CODE for rank in range(n_local_ranks))


def main(argv=None):
    """Run torchrun with ``argv`` (torchrun's own arguments, then the script and its arguments).

    :return: the exit status: torchrun's (0 on success) or 130 when every local rank stopped cleanly on a signal
    :raises torch.distributed.elastic.multiprocessing.errors.ChildFailedError, SignalException: torchrun's errors,
            re-raised when the stop was not a clean one
    """
    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    args = torchrun.parse_args(argv)
    n_local_ranks = torchrun.determine_local_world_size(args.nproc_per_node)
    with tempfile.TemporaryDirectory(prefix="ssd_exit_status_") as folder:
        # The workers inherit this process's environment (torchrun copies os.environ into every worker's).
        os.environ[EXIT_STATUS_DIR_VARIABLE] = folder
        try:
            torchrun.run(args)
            return 0
        except (ChildFailedError, SignalException):
            statuses = read_exit_statuses(folder)
            if not stopped_cleanly(statuses, n_local_ranks):
                raise
        finally:
            del os.environ[EXIT_STATUS_DIR_VARIABLE]
    print(f"ssd_support.launch: all {n_local_ranks} ranks stopped on a signal after their step and exited "
          f"{STOPPED_EXIT_CODE}; continue with --resume latest", file=sys.stderr, flush=True)
    return STOPPED_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
