"""Training speed of the LadderVAE on this machine, as a Markdown table.

    python benchmarks/bench_train.py                     # the table, then every comparison
    python benchmarks/bench_train.py --quick             # fewer images per measurement
    python benchmarks/bench_train.py --compare none --batch-sizes 256,1024 \\
        --jit-compile --mixed-precision                  # on a GPU

What it measures, in one process:
- the machine: CPU, cores, devices, load average, library versions;
- its fp32 matrix-multiply peak: the best of a few timed loops of large `tf.matmul`s;
- the model's FLOPs per training image (forward and backward pass of `compute_loss_terms`),
  counted by TensorFlow's graph profiler (`tf.compat.v1.profiler`, float_operation) on the
  traced gradient function;
- for each batch size, through `model.fit` as `train.py` runs it (the model from
  `training.build_model`, the pipeline from `data.make_dataset`): training img/s and ms/step
  after warm-up, evaluation img/s (`model.evaluate`), achieved GFLOP/s and its fraction of the
  matmul peak;
- the peak resident memory of the process;
- before/after comparisons of each speed choice, interleaved (A, B, A, B, ...) so that a change
  in the machine's load hits both sides: XLA on/off, pooled vs three-product MMD, input pipeline
  variants, mixed precision, per-step progress bar, steps per execution.

Each figure is the median over `--repeats` timed runs; the first run of each model (tracing,
oneDNN kernel selection, filling the `tf.data` cache) is not timed.
"""

import argparse
import contextlib
import gc
import io
import os
import platform
import resource
import statistics
import sys
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ladder_vae import data as data_lib  # noqa: E402
from ladder_vae import losses, training  # noqa: E402
from ladder_vae.config import TrainConfig  # noqa: E402
from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)

COMPARISONS = (
    "noise",
    "jit",
    "mmd",
    "pipeline",
    "mixed",
    "progbar",
    "steps_per_execution",
    "ssim",
)


# The machine ----------------------------------------------------------------------------------


def machine_description():
    """One line per fact about the machine and the software."""
    gpus = tf.config.list_physical_devices("GPU")
    gpu_names = [
        tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name) for gpu in gpus
    ]
    return [
        f"CPU: {cpu_model()}, {len(os.sched_getaffinity(0))} cores usable "
        f"({os.cpu_count()} online)",
        f"GPU: {', '.join(gpu_names) if gpu_names else 'none'}",
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}, NumPy {np.__version__}, {platform.platform()}",
    ]


def load_average():
    return "load average {:.2f} {:.2f} {:.2f} (1, 5, 15 min)".format(*os.getloadavg())


def peak_rss_mib():
    """Peak resident set size of this process so far (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def matmul_peak_gflops(size=2048, iterations=10, repeats=3, dtype=tf.float32):
    """The best GFLOP/s of `iterations` chained [size, size] matrix products, over `repeats`:
    (per wall second, per CPU second of this process).

    The products run inside one `tf.function`, so no Python sits between them. Chaining each
    product onto the last keeps any of them from being skipped; the scale keeps values finite.
    The CPU-second figure is the peak of one fully used core; it hardly moves with the load of
    other processes, so the fraction of it that training reaches can be compared across runs.
    """
    a = tf.random.stateless_normal((size, size), seed=(1, 2), dtype=dtype) / size**0.5
    b = tf.random.stateless_normal((size, size), seed=(3, 4), dtype=dtype) / size**0.5

    @tf.function
    def chain(a, b):
        for _ in range(iterations):
            a = tf.matmul(a, b)
        return tf.reduce_sum(a)

    chain(a, b).numpy()
    best, best_cpu = float("inf"), float("inf")
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        chain(a, b).numpy()
        best = min(best, time.perf_counter() - start)
        best_cpu = min(best_cpu, time.process_time() - start_cpu)
    flops = 2.0 * size**3 * iterations
    return flops / best / 1e9, flops / best_cpu / 1e9


# FLOPs ----------------------------------------------------------------------------------------


def graph_flops(function, batch_size, image_shape):
    """Float operations of one call of `function` on a batch, by TensorFlow's graph profiler."""
    from tensorflow.python.profiler import option_builder

    concrete = function.get_concrete_function(tf.TensorSpec((batch_size, *image_shape), tf.float32))
    options = option_builder.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        profile = tf.compat.v1.profiler.profile(
            graph=concrete.graph, run_meta=tf.compat.v1.RunMetadata(), cmd="op", options=options
        )
    return profile.total_float_ops


def model_flops_per_image(model, image_shape, batch_size=64):
    """(forward, training) FLOPs per image; training is the forward and backward pass."""

    @tf.function
    def forward(images):
        return model.compute_loss_terms(images, training=True)["loss"]

    @tf.function
    def gradients(images):
        with tf.GradientTape() as tape:
            loss = model.compute_loss_terms(images, training=True)["loss"]
        return tape.gradient(loss, model.trainable_weights)

    return (
        graph_flops(forward, batch_size, image_shape) / batch_size,
        graph_flops(gradients, batch_size, image_shape) / batch_size,
    )


# Timing ---------------------------------------------------------------------------------------


class EpochTimer(keras.callbacks.Callback):
    """(wall, CPU) seconds of the last training epoch or evaluation, without fit's set-up.

    CPU seconds are this process's, all threads (`time.process_time`): on a machine shared
    with other work they stay close to what a quiet machine would show, while wall seconds
    grow with the load; on a quiet machine the wall figure is the one that counts.
    """

    def __init__(self):
        super().__init__()
        self.seconds = None

    def _start(self):
        self.start = (time.perf_counter(), time.process_time())

    def _stop(self):
        self.seconds = (
            time.perf_counter() - self.start[0],
            time.process_time() - self.start[1],
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._start()

    def on_epoch_end(self, epoch, logs=None):
        self._stop()

    def on_test_begin(self, logs=None):
        self._start()

    def on_test_end(self, logs=None):
        self._stop()


def training_dataset(images, batch_size, pipeline="default"):
    """Endless training batches; `default` is `data.make_dataset`, as `train.py` uses.

    `uncached`: the same without `cache()` and `prefetch()`: every epoch converts every image
    again, and no batch is prepared while a step runs. `batched_map`: batches of uint8 images
    first, then one conversion per batch instead of one per image.
    """
    if pipeline == "default":
        dataset = data_lib.make_dataset(
            images, batch_size, shuffle=True, seed=0, drop_remainder=True
        )
    elif pipeline == "uncached":
        dataset = tf.data.Dataset.from_tensor_slices(images)
        dataset = dataset.map(data_lib.to_float).shuffle(len(images), seed=0)
        dataset = dataset.batch(batch_size, drop_remainder=True)
    elif pipeline == "batched_map":
        dataset = tf.data.Dataset.from_tensor_slices(images).cache()
        dataset = dataset.shuffle(len(images), seed=0).batch(batch_size, drop_remainder=True)
        dataset = dataset.map(data_lib.to_float, num_parallel_calls=tf.data.AUTOTUNE)
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    else:
        raise ValueError(f"Unknown pipeline. Received: pipeline={pipeline!r}")
    return dataset.repeat()


class Measurement:
    """A model, its data and how to time one training epoch (or evaluation) of `steps`."""

    def __init__(self, images, batch_size, steps, pipeline="default", verbose=0, **config):
        config = TrainConfig(batch_size=batch_size, **config)
        keras.utils.set_random_seed(0)
        self.batch_size = batch_size
        self.steps = steps
        self.verbose = verbose
        self.model = training.build_model(config, images.shape[1:])
        self.dataset = training_dataset(images, batch_size, pipeline)
        self.timer = EpochTimer()

    def train_seconds(self, steps=None):
        """(wall, CPU) seconds of one training epoch of `steps` steps (progress bar discarded).

        Python's garbage collector is run before and kept off during the epoch: a full
        collection over the graphs that other models traced would otherwise land in some
        epochs and not others.
        """
        gc.collect()
        gc.disable()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.model.fit(
                    self.dataset,
                    epochs=1,
                    steps_per_epoch=steps or self.steps,
                    callbacks=[self.timer],
                    verbose=self.verbose,
                    shuffle=False,
                )
        finally:
            gc.enable()
        if os.environ.get("BENCH_TRACE"):
            print(f"    {id(self) % 1000:3d} {self.timer.seconds}", file=sys.stderr, flush=True)
        return self.timer.seconds

    def evaluate_seconds(self, dataset, steps):
        self.model.evaluate(dataset, steps=steps, callbacks=[self.timer], verbose=0)
        return self.timer.seconds

    def warm_up(self, num_images):
        """Traces, compiles and fills the `tf.data` cache: a pass over every image and more."""
        self.train_seconds(max(3, -(-num_images // self.batch_size) + 2))


def interleaved(measurements, repeats):
    """Median (wall, CPU) seconds of one timed epoch per measurement, timed in turn.

    The order alternates (A B, B A, A B, ...), so that neither side is always timed first
    after the other has run, nor always nearer to a change in the machine's load.
    """
    seconds = {name: [] for name in measurements}
    names = list(measurements)
    # One untimed round first: a model's first epoch after another model's warm-up was
    # measured to cost about twice the CPU time of the later ones.
    for name in names:
        measurements[name].train_seconds()
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            seconds[name].append(measurements[name].train_seconds())
    return {
        name: tuple(statistics.median(column) for column in zip(*values))
        for name, values in seconds.items()
    }


def three_product_mmd(x, y, bandwidth=None, unbiased=True):
    """`losses.mmd` as first written: k(x, x), k(y, y) and k(x, y) from three distance
    computations, each with its own matrix product. Same value; the comparison's "before"."""
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.float32)
    if bandwidth is None:
        bandwidth = losses.rbf_kernel_bandwidth(x.shape[-1])

    def kernel(a, b):
        distances = (
            tf.reduce_sum(tf.square(a), axis=1)[:, None]
            + tf.reduce_sum(tf.square(b), axis=1)[None, :]
            - 2.0 * tf.matmul(a, b, transpose_b=True)
        )
        return tf.exp(-tf.maximum(distances, 0.0) / (2.0 * bandwidth**2))

    n = tf.cast(tf.shape(x)[0], tf.float32)
    m = tf.cast(tf.shape(y)[0], tf.float32)
    k_xx, k_yy, k_xy = kernel(x, x), kernel(y, y), kernel(x, y)
    if unbiased:
        xx = (tf.reduce_sum(k_xx) - n) / tf.maximum(n * (n - 1.0), 1.0)
        yy = (tf.reduce_sum(k_yy) - m) / tf.maximum(m * (m - 1.0), 1.0)
    else:
        xx, yy = tf.reduce_mean(k_xx), tf.reduce_mean(k_yy)
    return xx + yy - 2.0 * tf.reduce_mean(k_xy)


@contextlib.contextmanager
def swapped(name, function):
    """Swaps `losses.<name>` for `function` while models are traced (`latent_mmd` and the
    model look these functions up in `ladder_vae.losses` when they run)."""
    original = getattr(losses, name)
    setattr(losses, name, function)
    try:
        yield
    finally:
        setattr(losses, name, original)


def mmd_implementation(function):
    return swapped("mmd", function)


def no_ssim(images, reconstructions):
    """SSIM left out: a constant 1 per image, no computation, no gradient. What the SSIM term
    costs, not a training setting (its weight in the loss is then irrelevant)."""
    return tf.ones(tf.shape(images)[:1], tf.float32)


def mmd_microseconds(functions, batch_size, latent_dims=(2, 2, 2), calls=200, repeats=7):
    """Median microseconds of one forward and backward pass of the per-level MMD alone, for
    each of `functions` (a dict name -> mmd function), timed in alternating order."""
    codes = [tf.random.stateless_normal((batch_size, d), seed=(5, d)) for d in latent_dims]
    prior = [tf.random.stateless_normal((batch_size, d), seed=(6, d)) for d in latent_dims]
    steps = {}
    for name, function in functions.items():
        with mmd_implementation(function):

            @tf.function
            def step(codes):
                with tf.GradientTape() as tape:
                    tape.watch(codes)
                    value = losses.latent_mmd(codes, prior)
                return value, tape.gradient(value, codes)

            step(codes)
        steps[name] = step
    timings = {name: [] for name in functions}
    names = list(functions)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            start = time.perf_counter()
            for _ in range(calls):
                result = steps[name](codes)
            result[0].numpy()
            timings[name].append((time.perf_counter() - start) / calls * 1e6)
    return {name: statistics.median(values) for name, values in timings.items()}


def pipeline_images_per_second(dataset, batch_size, steps):
    """Images per second of iterating `dataset` alone (after one warm-up pass of `steps`)."""
    iterator = iter(dataset)
    for _ in range(steps):
        next(iterator)
    start = time.perf_counter()
    for _ in range(steps):
        batch = next(iterator)
    batch.numpy()
    return steps * batch_size / (time.perf_counter() - start)


# The report -----------------------------------------------------------------------------------


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def say(*lines):
    print(*lines, sep="\n", flush=True)


def speedup(baseline, value):
    """How much faster `value` seconds is than `baseline` seconds, as text."""
    return f"{100 * (baseline / value - 1.0):+.0f}%"


def comparison_rows(name, seconds, measurements, baseline):
    rows = []
    for variant, (wall, cpu) in seconds.items():
        measurement = measurements[variant]
        first = variant == baseline
        rows.append(
            [
                name,
                variant,
                f"{measurement.steps * measurement.batch_size / wall:,.0f}",
                f"{1000 * wall / measurement.steps:.1f}",
                f"{1000 * cpu / measurement.steps:.1f}",
                "baseline" if first else speedup(seconds[baseline][0], wall),
                "baseline" if first else speedup(seconds[baseline][1], cpu),
            ]
        )
    return rows


def run_comparisons(args, images, comparisons):
    """Before/after rows for each requested comparison, at `args.compare_batch_size`."""
    batch = args.compare_batch_size
    steps = max(5, args.images // batch)
    common = dict(
        images=images,
        batch_size=batch,
        steps=steps,
        jit_compile=args.jit_compile,
        mixed_precision=args.mixed_precision,
    )
    rows = []
    for comparison in comparisons:
        say(f"  {comparison} ... ({load_average()})")
        if comparison == "noise":
            # Two identical models: how far apart two figures of this run can be by chance.
            variants = {"default": dict(common), "default, again": dict(common)}
        elif comparison == "jit":
            variants = {
                "jit_compile off": dict(common, jit_compile=False),
                "jit_compile on (XLA)": dict(common, jit_compile=True),
            }
        elif comparison == "mixed":
            variants = {
                "float32": dict(common, mixed_precision=False),
                "mixed_float16": dict(common, mixed_precision=True),
            }
        elif comparison == "pipeline":
            variants = {
                "map, cache, prefetch (default)": dict(common),
                "map each epoch, no cache/prefetch": dict(common, pipeline="uncached"),
                "cache uint8, batch, map per batch": dict(common, pipeline="batched_map"),
            }
        elif comparison == "progbar":
            variants = {
                "verbose=0 (no per-step logs)": dict(common, verbose=0),
                "verbose=1 (progress bar)": dict(common, verbose=1),
            }
        elif comparison == "steps_per_execution":
            variants = {"1 (default)": dict(common), "8": dict(common)}
        elif comparison == "mmd":
            variants = {"pooled, one matmul": dict(common), "three matmuls": dict(common)}
        elif comparison == "ssim":
            variants = {"with SSIM (default)": dict(common), "SSIM not computed": dict(common)}
        measurements = {}
        for variant, kwargs in variants.items():
            function = three_product_mmd if variant == "three matmuls" else losses.mmd
            ssim = no_ssim if variant == "SSIM not computed" else losses.ssim
            with mmd_implementation(function), swapped("ssim", ssim):
                measurements[variant] = Measurement(**kwargs)
                if comparison == "steps_per_execution" and variant == "8":
                    model = measurements[variant].model
                    model.compile(
                        optimizer=model.optimizer,
                        steps_per_execution=8,
                        jit_compile=args.jit_compile,
                    )
                measurements[variant].warm_up(len(images))
        seconds = interleaved(measurements, args.repeats)
        rows += comparison_rows(comparison, seconds, measurements, next(iter(variants)))
        if comparison == "mmd":
            microseconds = mmd_microseconds(
                {"pooled, one matmul": losses.mmd, "three matmuls": three_product_mmd}, batch
            )
            for variant, value in microseconds.items():
                first = variant == "pooled, one matmul"
                rows.append(
                    [
                        "mmd alone, 3 levels x 2 dims (fwd+bwd, ms/call)",
                        variant,
                        "",
                        f"{value / 1000:.3f}",
                        "",
                        "baseline" if first else speedup(microseconds["pooled, one matmul"], value),
                        "",
                    ]
                )
        if comparison == "pipeline":
            for variant in ("default", "uncached", "batched_map"):
                rate = pipeline_images_per_second(
                    training_dataset(images, batch, variant),
                    batch,
                    max(steps, len(images) // batch),
                )
                rows.append(["pipeline alone", variant, f"{rate:,.0f}", "", "", "", ""])
    return rows


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--batch-sizes",
        default="64,128,256",
        help="training batch sizes of the main table (default: %(default)s)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=4096,
        help="images per timed epoch; at least 5 steps (default: %(default)s)",
    )
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed epochs per figure (default: %(default)s)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,024 images per timed epoch, 2 repeats"
    )
    parser.add_argument(
        "--data-dir",
        default=data_lib.BUNDLED_MNIST_DIR,
        help="IDX directory to take the images from (default: the bundled 3,000 digits)",
    )
    parser.add_argument("--jit-compile", action="store_true", help="XLA for every model")
    parser.add_argument(
        "--mixed-precision", action="store_true", help="mixed_float16 for every model"
    )
    parser.add_argument(
        "--compare",
        default=",".join(COMPARISONS),
        help="comparisons to run, comma-separated, or 'none' (default: %(default)s)",
    )
    parser.add_argument(
        "--compare-batch-size",
        type=int,
        default=64,
        help="batch size of the comparisons (default: %(default)s, the training default)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.repeats = 1024, 2
    args.batch_sizes = [int(size) for size in args.batch_sizes.split(",") if size]
    args.compare = [] if args.compare == "none" else [c for c in args.compare.split(",") if c]
    unknown = sorted(set(args.compare) - set(COMPARISONS))
    if unknown:
        parser.error(f"--compare: unknown {unknown}; choose from {', '.join(COMPARISONS)}")
    return args


def main(argv=None):
    args = parse_args(argv)
    data = data_lib.load_idx_dir(args.data_dir)
    images, val_images = data.train_images, data.val_images
    started = time.perf_counter()

    say("## Machine", "", *(f"- {line}" for line in machine_description()), f"- {load_average()}")
    peak, peak_per_cpu_second = matmul_peak_gflops()
    say(
        f"- fp32 matmul peak (2048x2048 tf.matmul, best of 3): {peak:,.1f} GFLOP/s; "
        f"{peak_per_cpu_second:,.1f} GFLOP per CPU-second"
    )
    forward_flops, training_flops = model_flops_per_image(
        training.build_model(TrainConfig(), images.shape[1:]), images.shape[1:]
    )
    say(
        f"- model FLOPs per image (tf.compat.v1.profiler on the traced graph): "
        f"forward {forward_flops / 1e6:.1f} MFLOP, training (forward + backward) "
        f"{training_flops / 1e6:.1f} MFLOP",
        f"- settings: jit_compile={args.jit_compile}, mixed_precision={args.mixed_precision}, "
        f"{args.images} images per timed epoch, median of {args.repeats}, "
        f"data {args.data_dir} ({len(images)} train, {len(val_images)} val)",
        "",
    )

    say("## Training and evaluation speed", "")
    rows = []
    for batch_size in args.batch_sizes:
        steps = max(5, args.images // batch_size)
        measurement = Measurement(
            images,
            batch_size,
            steps,
            jit_compile=args.jit_compile,
            mixed_precision=args.mixed_precision,
        )
        measurement.warm_up(len(images))
        seconds, cpu_seconds = interleaved({"train": measurement}, args.repeats)["train"]
        train_rate = steps * batch_size / seconds
        val_dataset = data_lib.make_dataset(val_images, batch_size).repeat()
        val_steps = max(5, args.images // batch_size)
        measurement.evaluate_seconds(val_dataset, val_steps)  # warm-up
        eval_seconds = statistics.median(
            measurement.evaluate_seconds(val_dataset, val_steps)[0] for _ in range(args.repeats)
        )
        achieved = train_rate * training_flops / 1e9
        achieved_per_cpu_second = steps * batch_size * training_flops / cpu_seconds / 1e9
        rows.append(
            [
                batch_size,
                f"{train_rate:,.0f}",
                f"{1000 * seconds / steps:.1f}",
                f"{1000 * cpu_seconds / steps:.1f}",
                f"{val_steps * batch_size / eval_seconds:,.0f}",
                f"{achieved:,.1f}",
                f"{100 * achieved / peak:.1f}%",
                f"{100 * achieved_per_cpu_second / peak_per_cpu_second:.1f}%",
            ]
        )
    say(
        markdown_table(
            [
                "batch",
                "train img/s",
                "ms/step",
                "CPU ms/step",
                "eval img/s",
                "achieved GFLOP/s",
                "of fp32 matmul peak",
                "(CPU-time basis)",
            ],
            rows,
        ),
        "",
        f"Peak RSS: {peak_rss_mib():,.0f} MiB. {load_average()}.",
        "",
    )

    if args.compare:
        say(f"## Before and after (batch {args.compare_batch_size})", "")
        rows = run_comparisons(args, images, args.compare)
        say(
            "",
            markdown_table(
                [
                    "comparison",
                    "variant",
                    "img/s",
                    "ms/step",
                    "CPU ms/step",
                    "speed vs first (wall)",
                    "(CPU)",
                ],
                rows,
            ),
            "",
        )
        say(f"Peak RSS: {peak_rss_mib():,.0f} MiB. {load_average()}.")
    say(f"Benchmark took {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
