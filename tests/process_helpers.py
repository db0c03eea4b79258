"""Processes the tests start (dg dev, segwh serve): a free port, and a stop that ends the
whole process group."""

import os
import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process_group(
    process: subprocess.Popen, timeout: float = 15, first: signal.Signals = signal.SIGTERM
) -> None:
    """``first`` (SIGTERM) to the process group (started with ``start_new_session``), SIGKILL
    after ``timeout`` seconds."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, first)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
