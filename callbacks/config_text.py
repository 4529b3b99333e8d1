"""ConfigText: the resolved configuration of a run, as text in TensorBoard."""

import json

import keras


class ConfigText(keras.callbacks.Callback):
    """Writes `config` to TensorBoard (`tf.summary.text`, tag `config`) when training begins.

    A Markdown table of one row per setting, so that the TensorBoard page of a run says how it
    was trained. Written again, at step 0, when a run resumes; TensorBoard shows the latest.

    Args:
        log_dir: TensorBoard directory of the text.
        config: a dict of settings (JSON-serialisable values), e.g. `TrainConfig.to_dict()`.
    """

    def __init__(self, log_dir, config):
        super().__init__()
        self.log_dir = log_dir
        self.config = dict(config)

    def on_train_begin(self, logs=None):
        import tensorflow as tf  # tf.summary: Keras has no text summary of its own.

        # One write: the writer is opened and closed here, and holds nothing between hooks.
        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default():
            tf.summary.text("config", config_markdown(self.config), step=0)
        writer.close()


def config_markdown(config):
    """`config` as a two-column Markdown table, keys sorted, values as JSON."""
    lines = ["| setting | value |", "| --- | --- |"]
    for key in sorted(config):
        lines.append(f"| {key} | `{json.dumps(config[key])}` |")
    return "\n".join(lines)
