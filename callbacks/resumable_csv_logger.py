"""ResumableCSVLogger: one CSV row per epoch, across interruptions and resumes."""

import csv
import os

import keras

from ladder_vae.atomic import atomic_path


class ResumableCSVLogger(keras.callbacks.CSVLogger):
    """Keras's `CSVLogger` in append mode that also drops the rows of epochs being redone.

    A run killed after writing an epoch's row but before its backup was committed redoes that
    epoch when it resumes; plain `CSVLogger(append=True)` would then hold the epoch twice. At the
    first epoch end of each `fit`, this one first removes every row whose `epoch` is not below
    the current one (a fresh run in an old directory thus starts a fresh file), so that the file
    holds each finished epoch exactly once.

    Args:
        filename: the CSV file.
        separator: the column separator.
    """

    def __init__(self, filename, separator=","):
        super().__init__(filename, separator=separator, append=True)

    def on_train_begin(self, logs=None):
        os.makedirs(os.path.dirname(os.path.abspath(self.filename)), exist_ok=True)
        super().on_train_begin(logs)
        self.checked_rows = False

    def on_epoch_end(self, epoch, logs=None):
        if not self.checked_rows:
            self.checked_rows = True
            self._drop_rows_from(epoch)
        super().on_epoch_end(epoch, logs)

    def _drop_rows_from(self, epoch):
        with open(self.filename, newline="") as file:
            rows = list(csv.reader(file, delimiter=self.sep))
        if not rows:
            return
        header, body = rows[0], rows[1:]
        kept = [row for row in body if row and _epoch_of(row) < epoch]
        if len(kept) == len(body):
            return
        # Rewritten under a temporary name and renamed, then reopened for appending.
        self.csv_file.close()
        with atomic_path(self.filename) as temporary, open(temporary, "w", newline="") as file:
            csv.writer(file, delimiter=self.sep).writerows([header] + kept)
        self.csv_file = open(self.filename, "a")
        self.append_header = False


def _epoch_of(row):
    try:
        return int(row[0])
    except ValueError:
        return -1
