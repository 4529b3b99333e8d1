"""Training throughput of one process against two `--strategy multiworker` processes.

    python benchmarks/bench_multiworker.py             # batch 64, 20 timed steps
    python benchmarks/bench_multiworker.py --steps 50 --batch-size 128

Every process uses one thread (TF_NUM_INTEROP_THREADS=1, TF_NUM_INTRAOP_THREADS=1), so two
workers on a 2-core machine have a core each. Three runs, each in fresh processes, on the
bundled digits:

- `one process, batch B`: the reference, the default strategy;
- `two workers, global batch B`: a chief and a worker on 127.0.0.1 (`TF_CONFIG`), B/2 each;
- `one process, batch B/2`: the computation one worker does per step, without communication.

The communication and synchronisation cost of a step is the two-worker step time minus the
B/2 one; the all-reduce of the gradients alone is timed separately in the two-worker processes.
A first epoch of `--steps` steps traces and warms up; the second is timed.
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPOSITORY)

from machine import cpu_model  # noqa: E402  (benchmarks/machine.py, beside this script)

ONE_THREAD = {
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
# One process's measurement: run as `python bench_multiworker.py --role ...`.
ALL_REDUCE_REPEATS = 20


def measure(role, batch_size, steps, base_filters, output):
    """Times `steps` training steps (after as many for warm-up) in this process."""
    import keras
    import tensorflow as tf

    from ladder_vae import data as data_lib
    from ladder_vae import distribute, training
    from ladder_vae.config import TrainConfig

    cluster = distribute.read_cluster() if role == "worker" else None
    strategy = distribute.make_strategy("multiworker", cluster, 120) if cluster else None
    config = TrainConfig(base_filters=base_filters, seed=0)
    images = data_lib.load_idx_dir(data_lib.BUNDLED_MNIST_DIR).train_images
    keras.utils.set_random_seed(0)
    model = training.build_model(config, images.shape[1:], strategy)
    dataset = data_lib.make_dataset(images, batch_size, shuffle=True, seed=0, drop_remainder=True)
    dataset = distribute.shard_by_data(dataset.repeat())

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    model.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0, callbacks=[timer])
    result = {"step_ms": 1000 * timer.seconds / steps, "images_per_s": steps * batch_size
              / timer.seconds}
    if strategy is not None:
        variables = model.trainable_variables

        @tf.function(autograph=False)
        def all_reduce():
            context = tf.distribute.get_replica_context()
            gradients = [tf.zeros_like(variable.value) for variable in variables]
            return context.all_reduce(tf.distribute.ReduceOp.SUM, gradients)

        strategy.run(all_reduce)
        start = time.perf_counter()
        for _ in range(ALL_REDUCE_REPEATS):
            values = strategy.run(all_reduce)
        strategy.experimental_local_results(values[0])[0].numpy()
        result["gradient_all_reduce_ms"] = 1000 * (time.perf_counter() - start) / (
            ALL_REDUCE_REPEATS
        )
        result["parameters"] = int(sum(v.numpy().size for v in variables))
        result["is_chief"] = cluster.is_chief
    with open(output, "w") as file:
        json.dump(result, file)


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def run(role, batch_size, args, work_dir, tf_configs=(None,)):
    """Starts one process per TF_CONFIG in `tf_configs`; returns their results."""
    processes = []
    for index, tf_config in enumerate(tf_configs):
        env = {**os.environ, **ONE_THREAD, "PYTHONPATH": REPOSITORY}
        env.pop("TF_CONFIG", None)
        if tf_config:
            env["TF_CONFIG"] = tf_config
        output = os.path.join(work_dir, f"{role}-{batch_size}-{index}.json")
        command = [
            sys.executable, os.path.abspath(__file__), "--role", role,
            "--batch-size", str(batch_size), "--steps", str(args.steps),
            "--base-filters", str(args.base_filters), "--output", output,
        ]
        processes.append((subprocess.Popen(command, cwd=REPOSITORY, env=env), output))
    results = []
    for process, output in processes:
        if process.wait(timeout=args.timeout) != 0:
            raise SystemExit(f"bench_multiworker.py: error: a {role} process failed")
        with open(output) as file:
            results.append(json.load(file))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64, help="global batch (default 64)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    parser.add_argument("--base-filters", type=int, default=32, help="model width (default 32)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--role", choices=["single", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        return measure(args.role, args.batch_size, args.steps, args.base_filters, args.output)

    batch = args.batch_size
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores; load average before: "
          f"{os.getloadavg()[0]:.1f}; one thread per process; base filters "
          f"{args.base_filters}; {args.steps} timed steps")
    with tempfile.TemporaryDirectory() as work_dir:
        ports = free_ports(2)
        cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"]}
        configs = [
            json.dumps({"cluster": cluster, "task": {"type": job, "index": 0}})
            for job in ("chief", "worker")
        ]
        one = run("single", batch, args, work_dir)[0]
        two = run("worker", batch, args, work_dir, configs)
        half = run("single", batch // 2, args, work_dir)[0]
    chief = next(result for result in two if result["is_chief"])
    rows = [
        (f"one process, batch {batch}", one["step_ms"], one["images_per_s"]),
        (f"two workers, global batch {batch}", chief["step_ms"], chief["images_per_s"]),
        (f"one process, batch {batch // 2}", half["step_ms"], half["images_per_s"]),
    ]
    print(f"{'run':<34} {'ms/step':>9} {'img/s':>8}")
    for name, step_ms, images_per_s in rows:
        print(f"{name:<34} {step_ms:>9.1f} {images_per_s:>8.0f}")
    speed_up = chief["images_per_s"] / one["images_per_s"]
    print(f"speed-up of two workers over one process: {speed_up:.2f}x")
    print(f"communication and synchronisation per step (two workers minus batch {batch // 2}): "
          f"{chief['step_ms'] - half['step_ms']:.1f} ms")
    print(f"all-reduce of the gradients alone ({chief['parameters']:,} float32 parameters): "
          f"{chief['gradient_all_reduce_ms']:.1f} ms")
    print(f"load average after: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
