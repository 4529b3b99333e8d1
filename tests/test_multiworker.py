"""`--strategy multiworker`: two real processes on 127.0.0.1, each with its own `TF_CONFIG`.

The processes use one thread each (TF_NUM_INTEROP_THREADS, TF_NUM_INTRAOP_THREADS) so that two
fit on a 2-core machine; ports are picked free when a test starts; every process runs under a
timeout.
"""

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

from ladder_vae import distribute
from ladder_vae.errors import ConfigError
from tests.conftest import REPO_ROOT
from tests.idx_files import small_idx_dir
from tests.strategy_steps import step_differences

ONE_THREAD = {
    "TF_NUM_INTEROP_THREADS": "1",
    "TF_NUM_INTRAOP_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",
}


def free_ports(count):
    """`count` distinct TCP ports that nothing listens on now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_configs(ports):
    """TF_CONFIG of a chief and a worker on 127.0.0.1, as the README's two-host commands."""
    cluster = {"chief": [f"127.0.0.1:{ports[0]}"], "worker": [f"127.0.0.1:{ports[1]}"]}
    return [
        json.dumps({"cluster": cluster, "task": {"type": job, "index": 0}})
        for job in ("chief", "worker")
    ]


def start(command, tf_config, log_path):
    """A process with `TF_CONFIG`, its output going to `log_path`."""
    env = {**os.environ, **ONE_THREAD, "TF_CONFIG": tf_config, "PYTHONPATH": REPO_ROOT}
    # train.py's own choice for multiworker, which keeps TensorFlow's C++ errors out.
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    log = open(log_path, "w")
    try:
        return subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    finally:
        log.close()


def finish(processes, timeout):
    """Waits for every process, killing all of them if any outlives `timeout` seconds."""
    deadline = time.monotonic() + timeout
    try:
        for process in processes:
            process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    return [process.returncode for process in processes]


def kill_all(processes):
    """Cleanup: kills whatever still runs, without raising."""
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()


def error_lines(log_path):
    return [
        line for line in open(log_path).read().splitlines() if line.startswith("train.py: error")
    ]


# TF_CONFIG -----------------------------------------------------------------------------------


def cluster_of(spec):
    return distribute.read_cluster({"TF_CONFIG": json.dumps(spec)})


def test_the_chief_is_the_chief_task_or_worker_0():
    two_workers = {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}
    first = cluster_of({"cluster": two_workers, "task": {"type": "worker", "index": 0}})
    second = cluster_of({"cluster": two_workers, "task": {"type": "worker", "index": 1}})
    assert (first.is_chief, second.is_chief, first.num_workers) == (True, False, 2)
    with_chief = {"chief": ["10.0.0.9:2222"], **two_workers}
    worker = cluster_of({"cluster": with_chief, "task": {"type": "worker", "index": 0}})
    chief = cluster_of({"cluster": with_chief, "task": {"type": "chief", "index": 0}})
    assert (chief.is_chief, worker.is_chief) == (True, False)
    assert [task[:2] for task in chief.tasks] == [("chief", 0), ("worker", 0), ("worker", 1)]
    assert worker.task_name == "worker 0 (10.0.0.1:2222)"
    assert distribute.read_cluster({}) is None
    assert distribute.read_cluster({"TF_CONFIG": " "}) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("{cluster", "TF_CONFIG: not JSON"),
        ('["a:1"]', "TF_CONFIG: expected a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "TF_CONFIG: 'cluster' must map"),
        ('{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}',
         "TF_CONFIG: worker 1: address 'b' is not 'host:port'"),
        ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
         "TF_CONFIG: worker 1 and worker 0 share the address a:1"),
        ('{"cluster": {"worker": ["a:1"], "ps": ["b:1"]}, "task": {"type": "worker"}}',
         "TF_CONFIG: job 'ps' is not supported"),
        ('{"cluster": {"worker": ["a:1"]}}', "TF_CONFIG: 'task' must say which task"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
         "TF_CONFIG: task type 'chief' is not a job of the cluster (worker)"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}',
         "TF_CONFIG: task index 1 is out of range: the cluster has 1 'worker' task(s)"),
        ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}',
         "TF_CONFIG: task index must be an integer"),
    ],
)
def test_malformed_tf_config_is_named(text, expected):
    with pytest.raises(ConfigError) as raised:
        distribute.read_cluster({"TF_CONFIG": text})
    message = str(raised.value)
    assert message.startswith(expected) and "\n" not in message


def test_settings_difference_names_the_flag_the_worker_and_both_values():
    cluster = cluster_of(
        {
            "cluster": {"chief": ["h1:1"], "worker": ["h2:1", "h3:1"]},
            "task": {"type": "chief", "index": 0},
        }
    )
    chief = {"batch_size": 64, "latent_dims": [2, 2, 2]}
    assert distribute.settings_difference(cluster, [chief, chief, dict(chief)]) is None
    message = distribute.settings_difference(
        cluster, [chief, chief, {"batch_size": 32, "latent_dims": [2, 2, 2]}]
    )
    assert message == (
        "--batch-size: 32 on worker 1 (h3:1) but 64 on the chief; start every worker with the "
        "same settings and data"
    )
    different = {**chief, "latent_dims": [3, 3]}
    message = distribute.settings_difference(cluster, [chief, different, chief])
    assert message.startswith("--latent-dims: 3,3 on worker 0 (h2:1) but 2,2,2 on the chief")


def test_lost_peer_message_names_the_peer_not_this_task():
    cluster = cluster_of(
        {"cluster": {"chief": ["h1:1"], "worker": ["h2:7"]}, "task": {"type": "chief", "index": 0}}
    )
    error = RuntimeError(
        "Collective ops is aborted by: cluster check alive failed, /job:worker/replica:0/task:0 "
        "is down\nAdditional GRPC error information from /job:chief/replica:0/task:0"
    )
    message = distribute.lost_peer_message(error, cluster)
    assert message == (
        "--strategy multiworker: lost worker 0 (h2:7), which stopped answering (RuntimeError); "
        "start every task again with the same commands to resume from the last finished epoch"
    )


def two_worker_clusters():
    ports = free_ports(2)
    spec = {"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]}}
    return [cluster_of({**spec, "task": {"type": "worker", "index": i}}) for i in (0, 1)]


def test_tasks_meet_over_tcp_then_free_their_ports():
    """`wait_for_cluster` returns on both tasks though the second starts a second later, and
    leaves both ports free for TensorFlow's server."""
    first, second = two_worker_clusters()
    errors = []

    def wait_second():
        try:
            distribute.wait_for_cluster(second, timeout=10)
        except ConfigError as error:
            errors.append(error)

    thread = threading.Thread(target=wait_second)
    thread.start()
    time.sleep(1.0)
    distribute.wait_for_cluster(first, timeout=10)
    thread.join(timeout=15)
    assert not thread.is_alive() and errors == []
    for _, _, address in first.tasks:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("", int(address.rsplit(":", 1)[1])))


def test_a_task_alone_names_the_others_after_the_timeout():
    first, second = two_worker_clusters()
    started = time.monotonic()
    with pytest.raises(ConfigError) as raised:
        distribute.wait_for_cluster(first, timeout=1)
    assert time.monotonic() - started < 5
    assert str(raised.value) == (
        f"--strategy multiworker: no answer from {second.task_name} within --peer-timeout 1 s; "
        f"start every task of TF_CONFIG (this is {first.task_name}), or check the addresses"
    )


def test_train_py_reports_a_malformed_tf_config_before_tensorflow_starts(tmp_path):
    completed = subprocess.run(
        [sys.executable, "train.py", "--strategy", "multiworker", "--run-dir", str(tmp_path / "r")],
        cwd=REPO_ROOT,
        env={**os.environ, **ONE_THREAD, "TF_CONFIG": '{"cluster": {"worker": ["a:1"]}'},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stderr.startswith("train.py: error: TF_CONFIG: not JSON")
    assert completed.stderr.count("\n") == 1 and "Traceback" not in completed.stderr
    assert not (tmp_path / "r").exists()


# Two processes take the step of one --------------------------------------------------------

STEPS = 3
GLOBAL_BATCH = 32
# Both processes run this; the chief then takes the same steps alone, in the default strategy.
EQUIVALENCE = textwrap.dedent(f"""
    import json, os, sys

    import keras
    import numpy as np
    import tensorflow as tf

    from ladder_vae import data as data_lib, distribute
    from ladder_vae.config import TrainConfig
    from tests.strategy_steps import sgd_epoch

    cluster = distribute.read_cluster()
    # Long: at its exit the worker waits at TensorFlow's shutdown barrier while the chief
    # takes the one-process steps.
    strategy = distribute.make_strategy("multiworker", cluster, peer_timeout=600)
    images = data_lib.load_idx_dir(data_lib.BUNDLED_MNIST_DIR).train_images[:{STEPS * GLOBAL_BATCH}]
    # The default loss weights and level input, so that the gathered MMD weighs in the gradient.
    # Latent sizes 3,1,6, not the default 1,1,6: with a one-dimensional bottom level three steps
    # at learning rate 0.1 amplify the rounding differences of the all-reduce's summation order
    # some 500-fold (median relative step difference 6.2e-3 against 1.2e-5, worst 0.18 against
    # 5.7e-4, measured), enough to hide a real discrepancy; the distributed paths are the same.
    config = TrainConfig(seed=3, base_filters=8, latent_dims=(3, 1, 6))


    def steps(strategy):
        # The training pipeline of `train`, global batches, each worker its share; in file order:
        # under a strategy Keras draws a first batch to build the model from a pass of its
        # own, so the shuffled order of its first epoch is a reshuffle's.
        dataset = distribute.shard_by_data(
            data_lib.make_dataset(images, {GLOBAL_BATCH}, drop_remainder=True)
        )
        return sgd_epoch(config, images.shape[1:], strategy, dataset, learning_rate=0.1)


    model, before, after, logs = steps(strategy)

    # A resumed run: the chief alone restores its backup (here: other weights, the epoch and
    # early stopping's count); ChiefStateBroadcast gives every worker the same.
    from callbacks import ChiefStateBroadcast
    early_stopping = keras.callbacks.EarlyStopping(patience=5)
    early_stopping.wait = 0
    if cluster.is_chief:
        for variable in model.weights + model.optimizer.variables:
            variable.assign(variable + keras.ops.cast(3, variable.dtype))
        model._initial_epoch = 2
        early_stopping.wait = 3
    broadcast = ChiefStateBroadcast([early_stopping])
    broadcast.set_model(model)
    broadcast.on_train_begin()
    np.savez(
        os.path.join(sys.argv[1], f"broadcast_{{cluster.task_type}}.npz"),
        epoch=model._initial_epoch,
        wait=early_stopping.wait,
        **{{f"v{{i}}": v.numpy() for i, v in enumerate(model.weights + model.optimizer.variables)}},
    )
    if cluster.is_chief:
        _, one_before, one_after, one_logs = steps(tf.distribute.get_strategy())
        arrays = {{}}
        for run, values in (("two_before", before), ("two_after", after),
                            ("one_before", one_before), ("one_after", one_after)):
            arrays.update({{f"{{run}}_{{i}}": v for i, v in enumerate(values)}})
        np.savez(os.path.join(sys.argv[1], "weights.npz"), **arrays)
        with open(os.path.join(sys.argv[1], "report.json"), "w") as file:
            json.dump({{
                "replicas": strategy.num_replicas_in_sync,
                "names": [w.path for w in model.weights],
                "trainable": [w.trainable for w in model.weights],
                "two": logs,
                "one": one_logs,
            }}, file)
    """)


@pytest.fixture(scope="module")
def two_process_steps(tmp_path_factory):
    """Three SGD steps of global batch 32 on a chief and a worker, and the same steps in one
    process; the weights before and after each."""
    work_dir = tmp_path_factory.mktemp("multiworker_steps")
    script = work_dir / "steps.py"
    script.write_text(EQUIVALENCE)
    processes = [
        start([sys.executable, str(script), str(work_dir)], tf_config, work_dir / f"{job}.log")
        for job, tf_config in zip(("chief", "worker"), tf_configs(free_ports(2)))
    ]
    codes = finish(processes, timeout=900)
    assert codes == [0, 0], (work_dir / "chief.log").read_text()[-3000:]
    report = json.loads((work_dir / "report.json").read_text())
    weights = np.load(work_dir / "weights.npz")
    for run in ("two_before", "two_after", "one_before", "one_after"):
        report[run] = [weights[f"{run}_{i}"] for i in range(len(report["names"]))]
    for job in ("chief", "worker"):
        report[f"broadcast_{job}"] = np.load(work_dir / f"broadcast_{job}.npz")
    return report


@pytest.mark.slow
def test_two_processes_take_the_steps_of_one(two_process_steps):
    """Same initial weights, same global batches: the two-process run's weights after three
    steps are the one-process run's (the loss division, the all-gathered MMD, synchronised batch
    statistics, the sliced noise and each worker reading its own share must all be right)."""
    run = two_process_steps
    assert run["replicas"] == 2
    for name, a0, b0 in zip(run["names"], run["one_before"], run["two_before"]):
        np.testing.assert_array_equal(a0, b0, err_msg=name)
    differences = step_differences(
        run["names"], run["trainable"], run["one_before"], run["one_after"],
        run["two_before"], run["two_after"],
    )
    for name, error in differences.items():
        # Measured after 3 steps: median 1.2e-5, worst 5.7e-4 (a batch normalisation's beta in
        # the encoder; rounding differences grow from step to step). Other batches than one
        # process's gave 1.28, and a missing loss division or unsynchronised batch norm >= 1
        # (tests of --strategy mirrored).
        assert error < 0.05, f"{name}: relative difference {error:.2e}"
    assert np.median(list(differences.values())) < 1e-3
    for key, value in run["one"].items():
        assert run["two"][key] == pytest.approx(value, rel=1e-3), key


@pytest.mark.slow
def test_every_worker_takes_the_chiefs_restored_state(two_process_steps):
    """What a resumed run's chief restored (weights, optimizer state, epoch, callback state)
    reaches the worker, which has no backup of its own."""
    chief, worker = (two_process_steps[f"broadcast_{job}"] for job in ("chief", "worker"))
    assert set(chief.files) == set(worker.files) and len(chief.files) > 20
    assert (int(worker["epoch"]), int(worker["wait"])) == (2, 3)
    for name in chief.files:
        np.testing.assert_array_equal(worker[name], chief[name], err_msg=name)
    # The chief's values after the broadcast are its own, changed ones.
    names = two_process_steps["names"]
    index = names.index(next(name for name in names if "kernel" in name))
    np.testing.assert_allclose(
        chief[f"v{index}"], two_process_steps["two_after"][index] + 3, rtol=1e-6
    )


# train.py on two processes ---------------------------------------------------------------------

EPOCHS = 3
# Each wait on a peer: when the two processes start (their imports may finish tens of seconds
# apart on a loaded machine) and for a killed one's heartbeats.
PEER_TIMEOUT = 30


def train_command(data_dir, run_dir, *extra):
    return [
        sys.executable, "train.py", "--strategy", "multiworker", "--data-dir", str(data_dir),
        "--run-dir", str(run_dir), "--epochs", str(EPOCHS), "--batch-size", "32",
        "--base-filters", "8", "--sample-every", "100", "--no-export",
        "--peer-timeout", str(PEER_TIMEOUT), *extra,
    ]


def backup_epoch(run_dir):
    try:
        return json.loads((run_dir / "backup" / "state.json").read_text())["epoch"]
    except (OSError, ValueError):
        return 0


def history_epochs(run_dir):
    with open(run_dir / "history.csv", newline="") as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


@pytest.mark.slow
def test_a_killed_worker_stops_the_chief_and_the_same_commands_resume(
    tmp_path, bundled_digits, monkeypatch
):
    data_dir = small_idx_dir(tmp_path / "digits", bundled_digits, num_train=256)
    run_dir = tmp_path / "run"
    # The worker's private directory goes under this TMPDIR, to check that none is left.
    worker_tmp = tmp_path / "tmp"
    worker_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(worker_tmp))
    configs = tf_configs(free_ports(2))
    command = train_command(data_dir, run_dir)
    chief = start(command, configs[0], tmp_path / "chief.log")
    worker = start(command, configs[1], tmp_path / "worker.log")
    try:
        # A second chief on the run directory is refused while the first holds it.
        deadline = time.monotonic() + 900
        while not (run_dir / "config.json").exists() and time.monotonic() < deadline:
            assert chief.poll() is None, (tmp_path / "chief.log").read_text()[-3000:]
            time.sleep(0.2)
        second = subprocess.run(
            train_command(data_dir, run_dir), cwd=REPO_ROOT, env={**os.environ, **ONE_THREAD},
            capture_output=True, text=True, timeout=60,
        )
        assert second.returncode == 2
        assert "another training is using it" in second.stderr
        # Epoch 1 is backed up: epoch 2 is in flight.
        while backup_epoch(run_dir) < 1 and time.monotonic() < deadline:
            assert chief.poll() is None, (tmp_path / "chief.log").read_text()[-3000:]
            time.sleep(0.1)
        assert backup_epoch(run_dir) == 1
        worker.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        finish([worker, chief], timeout=3 * PEER_TIMEOUT + 30)
        noticed = time.monotonic() - killed
    finally:
        kill_all([worker, chief])
    log = (tmp_path / "chief.log").read_text()
    assert chief.returncode == 4, log[-3000:]
    [line] = error_lines(tmp_path / "chief.log")
    worker_address = json.loads(configs[0])["cluster"]["worker"][0]
    assert line.startswith(
        f"train.py: error: --strategy multiworker: lost worker 0 ({worker_address})"
    ), line
    assert "Traceback" not in log
    print(f"chief stopped {noticed:.1f} s after the worker was killed")
    assert history_epochs(run_dir) == [0]
    assert backup_epoch(run_dir) == 1
    assert not (run_dir / "model.keras").exists()

    # The same two commands again: the chief resumes, the worker follows.
    chief = start(command, configs[0], tmp_path / "chief2.log")
    worker = start(command, configs[1], tmp_path / "worker2.log")
    codes = finish([chief, worker], timeout=360)
    log = (tmp_path / "chief2.log").read_text()
    assert codes == [0, 0], log[-3000:] + (tmp_path / "worker2.log").read_text()[-2000:]
    assert "Resuming from the backup of epoch 1" in log
    assert "Resuming from the chief's backup of epoch 1" in (tmp_path / "worker2.log").read_text()
    assert f"Epoch 2/{EPOCHS}" in log and "Epoch 1/" not in log
    assert history_epochs(run_dir) == list(range(EPOCHS))
    assert {"config.json", "history.csv", "best.keras", "model.keras"} <= set(os.listdir(run_dir))
    assert not (run_dir / "backup").exists()
    # Nothing of the worker's is left: its killed directory went when the next one started.
    assert [p for p in os.listdir(worker_tmp) if p.startswith(distribute.WORKER_DIR_PREFIX)] == []


@pytest.mark.slow
def test_a_worker_with_other_settings_stops_both_with_one_line(tmp_path, bundled_digits):
    data_dir = small_idx_dir(tmp_path / "digits", bundled_digits, num_train=64)
    run_dir = tmp_path / "run"
    configs = tf_configs(free_ports(2))
    worker_address = json.loads(configs[0])["cluster"]["worker"][0]
    processes = [
        start(train_command(data_dir, run_dir, "--latent-dims", dims), config, tmp_path / name)
        for dims, config, name in (("2,2,2", configs[0], "chief.log"),
                                   ("3,3,3", configs[1], "worker.log"))
    ]
    assert finish(processes, timeout=180) == [2, 2]
    expected = (
        f"train.py: error: --latent-dims: 3,3,3 on worker 0 ({worker_address}) but 2,2,2 on the "
        "chief; start every worker with the same settings and data"
    )
    for name in ("chief.log", "worker.log"):
        assert error_lines(tmp_path / name) == [expected]
        assert "Traceback" not in (tmp_path / name).read_text()
    assert not run_dir.exists()


@pytest.mark.slow
def test_a_peer_that_never_answers_is_named_within_the_peer_timeout(tmp_path, bundled_digits):
    data_dir = small_idx_dir(tmp_path / "digits", bundled_digits, num_train=64)
    configs = tf_configs(free_ports(2))
    worker_address = json.loads(configs[0])["cluster"]["worker"][0]
    command = train_command(data_dir, tmp_path / "run")
    command[command.index("--peer-timeout") + 1] = "3"
    chief = start(command, configs[0], tmp_path / "chief.log")
    assert finish([chief], timeout=150) == [2]
    assert error_lines(tmp_path / "chief.log") == [
        f"train.py: error: --strategy multiworker: no answer from worker 0 ({worker_address}) "
        "within --peer-timeout 3 s; start every task of TF_CONFIG (this is chief 0 "
        f"({json.loads(configs[0])['cluster']['chief'][0]})), or check the addresses"
    ]
    assert not (tmp_path / "run").exists()
