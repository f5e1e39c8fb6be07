"""The run log: train_log.csv, loss_curve.png, TensorBoard, the progress bar and the plain line, fed by one call.

``RunLog.add(iteration, **values)`` is the one place a number is logged; it goes to every sink that is on:
the CSV (rank 0), TensorBoard (--tensorboard), the tqdm bar's postfix, and a plain line under --no-progress.
"""

import csv
import importlib
import os

from tqdm import tqdm

class LogWriteError(OSError):
    """train_log.csv, loss_curve.png or train_summary.json cannot be written (a full disk, no permission): one
    line naming the file; the checkpoints written so far are intact."""


def cannot_write(path, error):
    """The LogWriteError for an OSError met while writing ``path``: "cannot write PATH: no space left on device"."""
    reason = os.strerror(error.errno).lower() if error.errno else str(error)
    return LogWriteError(f"cannot write {path}: {reason}")


# A training row fills the first columns; an evaluation row (--eval-every) the mAP and the eval_ ones: the
# evaluated split's MultiBox loss (comparable with the TRAIN loss) and its precision / recall at --operating-score.
LOG_FIELDS = ("iteration", "loss", "loc_loss", "conf_loss", "lr", "images_per_s", "elapsed_s", "map_11pt",
              "eval_loss", "eval_loc_loss", "eval_conf_loss", "eval_precision", "eval_recall")
LOSS_PARTS = (("loss", "total"), ("loc_loss", "localization"), ("conf_loss", "confidence"))


class TrainingLog:
    """train_log.csv (one row every --log-every iterations, plus eval rows) and loss_curve.png.

    When resuming, rows after the resumed iteration (written by the interrupted run after its last
    checkpoint) are dropped, so the log reads like one uninterrupted run.

    :param folder: where the files go
    :param start_iteration: the iteration training (re)starts from
    :param enabled: False on ranks other than 0, which must not write
    """

    eval_split = "TEST"  # the split the map_11pt rows measure (train.py sets "VAL" when it evaluates on VAL)

    def __init__(self, folder, start_iteration, enabled=True):
        self.csv_path = os.path.join(folder, "train_log.csv")
        self.png_path = os.path.join(folder, "loss_curve.png")
        self.enabled = enabled
        self.rows = []
        if not enabled:
            return
        os.makedirs(folder, exist_ok=True)
        if start_iteration > 0 and os.path.isfile(self.csv_path):
            with open(self.csv_path, newline="") as file:
                # A log of an older version lacks the newer columns: they stay empty.
                self.rows = [{field: row.get(field) or "" for field in LOG_FIELDS} for row in csv.DictReader(file)
                             if int(row["iteration"]) <= start_iteration]
        with open(self.csv_path, "w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=LOG_FIELDS)
            writer.writeheader()
            writer.writerows(self.rows)

    def add(self, **row):
        """Append one row (keys from LOG_FIELDS, values as they are to be written; missing ones stay empty) and
        flush it to disk."""
        row = {field: row.get(field, "") for field in LOG_FIELDS}
        self.rows.append(row)
        if self.enabled:
            try:
                with open(self.csv_path, "a", newline="") as file:
                    csv.DictWriter(file, fieldnames=LOG_FIELDS).writerow(row)
            except OSError as error:
                raise cannot_write(self.csv_path, error) from None

    def plot(self):
        """Draw the loss parts (and the mAP, if evaluated) against the iteration into loss_curve.png."""
        if not self.enabled:
            return
        import matplotlib

        matplotlib.use("Agg")  # no display needed; imported here so that importing train.py stays light
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator

        def series(key):
            points = [(int(r["iteration"]), float(r[key])) for r in self.rows if r[key] not in ("", None)]
            return [p[0] for p in points], [p[1] for p in points]

        figure, axis = plt.subplots(figsize=(8, 5.5))
        for index, (key, label) in enumerate(LOSS_PARTS):
            colour = f"C{index}"  # a part's TRAIN and evaluated-split curves share a colour
            xs, ys = series(key)
            if xs:
                axis.plot(xs, ys, color=colour, label=f"{label} (TRAIN)")
            xs, ys = series(f"eval_{key}")
            if xs:
                axis.plot(xs, ys, "--o", color=colour, markersize=4, label=f"{label} ({self.eval_split})")
        axis.set_xlabel("iteration")
        axis.set_ylabel("MultiBox loss")
        if any(r[key] not in ("", None) and float(r[key]) > 0 for r in self.rows for key in ("loss", "eval_loss")):
            axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        handles, labels = axis.get_legend_handles_labels()
        xs, ys = series("map_11pt")
        if xs:
            map_axis = axis.twinx()
            map_axis.plot(xs, ys, "k-o", label=f"mAP (11-point, {self.eval_split})")
            map_axis.set_ylabel("mAP")
            map_axis.set_ylim(0, 1)
            map_handles, map_labels = map_axis.get_legend_handles_labels()
            handles, labels = handles + map_handles, labels + map_labels
        if handles:  # one legend, below the axes, where it hides no curve's newest points
            axis.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=4, fontsize="small",
                        frameon=False)
        axis.set_title("SSD training")
        figure.tight_layout()
        try:
            figure.savefig(self.png_path, dpi=100)
        except OSError as error:
            raise cannot_write(self.png_path, error) from None
        finally:
            plt.close(figure)


class ThroughputMeter:
    """Images per second over the training steps since the last reading (evaluation and saving excluded)."""

    def __init__(self):
        self.images, self.seconds = 0, 0.0

    def add(self, n_images, seconds):
        """Count one step of ``n_images`` images (all processes together) that took ``seconds``."""
        self.images += n_images
        self.seconds += seconds

    def read_and_reset(self):
        """:return: images/s since the last call (float)"""
        rate = self.images / max(self.seconds, 1e-9)
        self.images, self.seconds = 0, 0.0
        return rate


def require_tensorboard():
    """Check that ``torch.utils.tensorboard`` can be used.

    :raises ImportError: with a one-line message naming the package to install
    """
    try:
        importlib.import_module("torch.utils.tensorboard")  # which imports the tensorboard package
    except ImportError:
        raise ImportError("--tensorboard needs the tensorboard package: pip install tensorboard") from None


class TensorBoardLog:
    """Scalars for TensorBoard (``tensorboard --logdir DIR``), beside train_log.csv: the same numbers, live.

    :param folder: the event folder (--tensorboard DIR)
    :param start_iteration: where the run (re)starts; events an interrupted run wrote after it are purged, so a
        resumed run's curves read like one uninterrupted run (as TrainingLog does with its rows)
    """

    def __init__(self, folder, start_iteration=0):
        from torch.utils.tensorboard import SummaryWriter  # imported here: the package is optional

        self.writer = SummaryWriter(folder, purge_step=start_iteration + 1 if start_iteration > 0 else None)

    def add(self, iteration, scalars):
        """Write ``{tag: float}`` at step ``iteration`` and flush (a crashed run keeps what it logged)."""
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, float(value), global_step=iteration)
        self.writer.flush()

    def close(self):
        """Flush and close the event file."""
        self.writer.close()


# How each number is written in train_log.csv, and its TensorBoard tag ("{split}": the split evaluated).
LOG_FORMATS = {"loss": ".5f", "loc_loss": ".5f", "conf_loss": ".5f", "lr": ".3g", "images_per_s": ".2f",
               "elapsed_s": ".1f", "map_11pt": ".4f", "eval_loss": ".5f", "eval_loc_loss": ".5f",
               "eval_conf_loss": ".5f", "eval_precision": ".4f", "eval_recall": ".4f"}
TENSORBOARD_TAGS = {"loss": "loss/total", "loc_loss": "loss/localization", "conf_loss": "loss/confidence",
                    "lr": "lr", "images_per_s": "images_per_s", "map_11pt": "mAP_11pt/{split}",
                    "eval_loss": "loss/total_{split}", "eval_loc_loss": "loss/localization_{split}",
                    "eval_conf_loss": "loss/confidence_{split}", "eval_precision": "precision/{split}",
                    "eval_recall": "recall/{split}"}


class RunLog:
    """One ``add`` per row feeds every sink: train_log.csv and loss_curve.png (TrainingLog), TensorBoard
    (--tensorboard), the tqdm bar and, under --no-progress, a plain line. Ranks other than 0 log nothing.

    Use as a context manager: leaving it closes the bar and TensorBoard's file and draws the loss curve.

    :param folder: the --checkpoint-dir (train_log.csv, loss_curve.png)
    :param start_iteration: where the run (re)starts: later rows of an interrupted run are dropped
    :param total_iterations: the bar's length
    :param enabled: False on ranks other than 0
    :param tensorboard_dir: --tensorboard DIR, or None
    :param progress: a tqdm bar (True) or a plain line per training row (False, --no-progress)
    :param eval_split: the split the map_11pt rows measure ("VAL" or "TEST")
    """

    def __init__(self, folder, start_iteration, total_iterations, enabled=True, tensorboard_dir=None,
                 progress=True, eval_split="TEST"):
        self.enabled, self.eval_split = enabled, eval_split
        self.table = TrainingLog(folder, start_iteration, enabled=enabled)
        self.table.eval_split = eval_split
        self.tensorboard = TensorBoardLog(tensorboard_dir, start_iteration) if enabled and tensorboard_dir else None
        self.bar = tqdm(total=total_iterations, initial=start_iteration, desc="train", unit="it", dynamic_ncols=True,
                        disable=not enabled or not progress)
        self.plain_lines = enabled and not progress

    @property
    def rows(self):
        """The CSV rows so far (dicts of strings), the resumed run's earlier ones included."""
        return self.table.rows

    def add(self, iteration, **values):
        """Log the numbers of one iteration (keys of LOG_FORMATS, floats) to every sink.

        A row with a ``loss`` is a training row (the bar's postfix, the plain line); one with ``map_11pt`` an
        evaluation row.
        """
        if not self.enabled:
            return
        self.table.add(iteration=iteration, **{key: format(value, LOG_FORMATS[key]) for key, value in values.items()})
        if self.tensorboard is not None:
            self.tensorboard.add(iteration, {TENSORBOARD_TAGS[key].format(split=self.eval_split): value
                                             for key, value in values.items() if key in TENSORBOARD_TAGS})
        if "loss" in values:
            self.bar.set_postfix(loss=f"{values['loss']:.3f}", loc=f"{values['loc_loss']:.3f}",
                                 conf=f"{values['conf_loss']:.3f}", lr=f"{values['lr']:.2e}",
                                 img_s=f"{values['images_per_s']:.1f}", refresh=False)
            if self.plain_lines:  # under nohup or a batch scheduler: a plain line per log row
                print(f"iteration {iteration}: loss {values['loss']:.4f} (localization {values['loc_loss']:.4f}, "
                      f"confidence {values['conf_loss']:.4f}), lr {values['lr']:.3g}, "
                      f"{values['images_per_s']:.1f} images/s", flush=True)

    def step(self):
        """One iteration done: advance the bar."""
        self.bar.update(1)

    def write(self, message):
        """A line for the reader (an evaluation's result, why the run stopped), above the bar; rank 0 only."""
        if self.enabled:
            self.bar.write(message)

    def plot(self):
        """Redraw loss_curve.png (rank 0)."""
        self.table.plot()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.bar.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
        if exc_info[0] is None:  # after an error, the error is what the user needs to read
            self.plot()
        return False
