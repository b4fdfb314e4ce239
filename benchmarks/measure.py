"""Run one benchmark case in a child process and record wall time and the peak RSS of its
whole process tree (pool workers included), polled every 50 ms."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil


def tree_rss(proc: psutil.Process) -> int:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total


def run_case(module: str, *args: str, timeout: float = 1800) -> dict:
    """Run `python -m module args...`; its last stdout line is a JSON object of figures."""
    start = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", module, *args], stdout=subprocess.PIPE, text=True)
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, tree_rss(proc))
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
        if time.perf_counter() - start > timeout:
            child.kill()
            raise TimeoutError(f"{module} {args} ran over {timeout} s")
    out = child.stdout.read()
    if child.returncode != 0:
        raise RuntimeError(f"{module} {args} failed with exit code {child.returncode}")
    figures = json.loads(out.strip().splitlines()[-1])
    figures.update(wall_s=round(time.perf_counter() - start, 2), peak_rss_mb=round(peak / 2**20, 1))
    return figures
