"""Peak memory of the exported `sample` endpoint as `num` grows, decoded in chunks or at once.

    python benchmarks/sample_memory.py                       # num = 1000, 10000, 100000
    python benchmarks/sample_memory.py --nums 1000 10000 --unchunked-nums 1000 10000

Exports the default model (random weights: memory does not depend on them) twice, with the
endpoint's chunk size and with one chunk for everything (as a single decoder call), then calls
`sample(num=N)` in a fresh process per N and prints its peak resident memory (`ru_maxrss`),
the bytes of the images it returns, and the rest: what the decoding itself took.
"""

import argparse
import os
import subprocess
import sys
import tempfile

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPOSITORY not in sys.path:
    sys.path.insert(0, REPOSITORY)

CLIENT = r"""
import resource, sys
import tensorflow as tf
model = tf.saved_model.load(sys.argv[1])
model.sample(num=1, seed=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
images = model.sample(num=int(sys.argv[2]), seed=0)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(before * 1024, peak * 1024, images.numpy().nbytes)
"""


def export(path, chunk):
    import ladder_vae.export as export_lib
    from ladder_vae.model import LadderVAE

    export_lib.SAMPLE_CHUNK = chunk
    export_lib.export_model(LadderVAE(), path)


def measure(path, num):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, path, str(num)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return [int(value) for value in result.stdout.split()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nums", type=int, nargs="*", default=[1000, 10000, 100000])
    parser.add_argument("--unchunked-nums", type=int, nargs="*", default=[1000, 10000])
    args = parser.parse_args(argv)
    import ladder_vae.export as export_lib

    chunk = export_lib.SAMPLE_CHUNK
    mib = 2**20
    print("| decoding | num | peak RSS MiB | before the call MiB | images MiB | rest MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for label, size, nums in (
            (f"chunks of {chunk}", chunk, args.nums),
            ("one call", 2**30, args.unchunked_nums),
        ):
            path = os.path.join(tmp, f"saved_model_{size}")
            export(path, size)
            for num in nums:
                before, peak, image_bytes = measure(path, num)
                rest = peak - before - image_bytes
                print(
                    f"| {label} | {num} | {peak / mib:,.0f} | {before / mib:,.0f} | "
                    f"{image_bytes / mib:,.0f} | {rest / mib:,.0f} |"
                )


if __name__ == "__main__":
    main()
