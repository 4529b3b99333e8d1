"""What the benchmark scripts say about the machine they ran on."""

import platform


def cpu_model():
    """The CPU's model name from /proc/cpuinfo, or what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"
