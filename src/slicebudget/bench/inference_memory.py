"""Peak memory of one inference, measured in a fresh process per method.

tracemalloc cannot see torch's allocations, so this reads the kernel's resident-set high-water mark
(VmHWM in /proc/self/status). In a child process: load the model and the volume, run the method
once as a warm-up, reset the high-water mark to the current RSS (writing 5 to /proc/self/clear_refs),
run it again, and report VmHWM minus the RSS at the reset: the extra memory the inference itself
needed at its peak. The parent starts the child with glibc's mmap threshold at 64 KiB, so every
tensor of that size or more is returned to the system when freed and the warm-up's memory cannot
be silently reused by the measured run. Where clear_refs cannot be written, the child falls back
to ``ru_maxrss`` after minus before (a lower bound when the warm-up peaked higher).
"""

from __future__ import annotations

import gc
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

MMAP_THRESHOLD = 65536


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def measure_in_this_process(run) -> float:
    """Peak extra resident memory (MiB) of ``run()``, after one warm-up call."""
    run()
    gc.collect()
    if _reset_peak():
        before = _status_kib("VmRSS")
        run()
        return max(0, _status_kib("VmHWM") - before) / 1024
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    run()
    return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024


def child_main(argv: list[str] | None = None) -> None:
    """Entry point of the child: ``argv[0]`` is a JSON job; prints ``{"peak_mb": ...}``."""
    import torch

    from slicebudget.bench.inference_methods import make_method
    from slicebudget.models.nmsw.model import load_nmsw

    job = json.loads((argv or sys.argv[1:])[0])
    torch.set_num_threads(int(job["threads"]))
    model, _ = load_nmsw(job["checkpoint"])
    image = torch.load(job["volume"], weights_only=True)
    method = make_method(job["method"], model, job["k"], job["batch_size"], job["patch_size"])

    def run():
        with torch.no_grad():
            method(image)

    print(json.dumps({"peak_mb": measure_in_this_process(run)}))


def measure_peak_mb(job: dict, timeout_s: float = 1800) -> float:
    """Run one job (see :func:`child_main`) in a fresh interpreter; return its peak extra MiB."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}
    command = [sys.executable, "-c", "from slicebudget.bench.inference_memory import child_main; child_main()",
               json.dumps(job)]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory probe failed for {job['method']} k={job['k']}: {done.stderr.strip()[-500:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"])
