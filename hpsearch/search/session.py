"""Ray for the length of one stage: joined or started, shut down on every way out, and reaped after a SIGKILL.

A local Ray that a killed driver leaves behind (its dashboard and runtime-env agents ignore SIGTERM and
hold about 170 MB) is recorded in the run directory, so that the next ``hpsearch resume`` of that run
ends it before starting its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

from hpsearch.errors import HpsearchError, SearchError
from hpsearch.io import write_json
from hpsearch.training import preserved_global_rng

log = logging.getLogger(__name__)

RAY_SESSION_FILE = ".ray-session.json"  # in the run directory while a local Ray started by hpsearch runs
CONNECT_TIMEOUT_S = 5.0
QUIET_RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",  # no network here, and no telemetry by default
    "RAY_AIR_NEW_OUTPUT": "0",  # Ray's compact trial table instead of one box per trial and result
    # Every epoch is checkpointed (a trial can resume exactly); Ray need not warn about the syncs.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
}


def check_reachable(address: str) -> None:
    """A ``host:port`` that refuses connections fails in seconds here, instead of in minutes inside Ray."""
    if address in ("auto", "local") or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S):
            return
    except ValueError:
        raise HpsearchError(f"--address must look like HOST:PORT (e.g. 127.0.0.1:6379), but got {address!r}.") from None
    except OSError as err:
        raise HpsearchError(f"No Ray cluster answers at {address} ({err.strerror or err}) within "
                          f"{CONNECT_TIMEOUT_S:g} s. Start one with `ray start --head --port {port}`, or check "
                          f"--address.") from None


@contextlib.contextmanager
def quiet_ray_env() -> Iterator[None]:
    """``QUIET_RAY_ENV`` (where the caller has not set those variables) while Ray runs, and the environment as it
    was afterwards: the library leaves no process-wide state behind."""
    added = [key for key in QUIET_RAY_ENV if key not in os.environ]
    for key in added:
        os.environ[key] = QUIET_RAY_ENV[key]
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def start_ray(address: str | None) -> dict | None:
    """Join the cluster at ``address`` or start a local Ray; return Ray's address info if we started it."""
    import ray

    if ray.is_initialized():
        return None
    if address:
        check_reachable(address)
    try:
        if address:
            ray.init(address=address, log_to_driver=True)
            return None
        # "local": a new instance of our own, never the cluster a past `ray start` recorded in
        # /tmp/ray/ray_current_cluster (ray.init() without an address joins it, and hangs if it is gone)
        context = ray.init(address="local", include_dashboard=False, log_to_driver=True)
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        raise SearchError(f"Could not start or join {where}: {err}. Check --address "
                          f"(e.g. 127.0.0.1:6379 after `ray start --head`).") from None
    return dict(context.address_info)


@contextlib.contextmanager
def ray_session(address: str | None, run_dir: Path | None = None) -> Iterator[None]:
    """Ray for the duration of a stage, shut down on every exit if we started it; a local Ray started for a
    run directory is recorded there until it is shut down (see ``reap_leftover_ray``). The process's
    environment and random generators are as they were afterwards."""
    with quiet_ray_env(), preserved_global_rng(fresh=True):  # Ray's driver draws from the global generators
        handler = signal.getsignal(signal.SIGTERM)
        info = start_ray(address)
        if handler is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, handler)  # ray.init installs its own; the caller's stays in charge
        record = run_dir / RAY_SESSION_FILE if run_dir is not None and info else None
        if record is not None:
            write_json(record, {"driver_pid": os.getpid(), "session_dir": info.get("session_dir")})
        try:
            yield
        finally:
            if info is not None:
                import ray

                ray.shutdown()
            if record is not None:
                record.unlink(missing_ok=True)


def belongs_to(process: Path, session_dir: str) -> bool:
    """Whether a /proc entry is a process of that Ray session: its command line names the session folder, or
    (for the agents, which rename themselves to ``ray::DashboardAgent`` and the like) a file it holds open is
    in it."""
    try:
        if session_dir in (process / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
            return True
        return any(os.readlink(fd).startswith(session_dir) for fd in (process / "fd").iterdir())
    except OSError:
        return False


def leftover_processes(session_dir: str) -> list[int]:
    """PIDs of the processes (not this one) of the Ray session in ``session_dir``."""
    return [int(entry.name) for entry in Path("/proc").glob("[0-9]*")
            if int(entry.name) != os.getpid() and belongs_to(entry, session_dir)]


def reap_leftover_ray(run_dir: Path) -> list[int]:
    """End the local Ray that a killed ``hpsearch`` driver left running for ``run_dir``; return their PIDs."""
    record = run_dir / RAY_SESSION_FILE
    if not record.is_file():
        return []
    try:
        info = json.loads(record.read_text())
        driver, session_dir = int(info["driver_pid"]), str(info["session_dir"])
    except (ValueError, KeyError, TypeError):
        record.unlink(missing_ok=True)
        return []
    if Path(f"/proc/{driver}").exists():
        raise SearchError(f"Another hpsearch process (PID {driver}) is still running the search in {run_dir}; "
                          f"wait for it, or stop it (kill {driver}) before resuming.")
    pids = leftover_processes(session_dir) if session_dir and Path("/proc").is_dir() else []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    if pids:
        log.warning("Ended %d Ray process(es) left running by a killed hpsearch (session %s).", len(pids),
                    session_dir)
    record.unlink(missing_ok=True)
    return pids


def check_resources(cpus_per_trial: float, gpus_per_trial: float, workers_per_trial: int = 1) -> None:
    """A trial that asks for more than the cluster has would wait forever: say so at once."""
    import ray

    have = ray.cluster_resources()
    wants = (("CPU", "--cpus-per-trial", cpus_per_trial), ("GPU", "--gpus-per-trial", gpus_per_trial))
    for kind, flag, wanted in wants:
        if wanted > have.get(kind, 0):
            raise SearchError(f"Each trial asks for {wanted:g} {kind}(s) but the Ray cluster has "
                              f"{have.get(kind, 0):g}; lower it with {flag} (e.g. {flag} "
                              f"{'0' if kind == 'GPU' else '1'}).")
        if workers_per_trial * wanted > have.get(kind, 0):
            fits = int(have.get(kind, 0) // wanted) if wanted else workers_per_trial
            raise SearchError(f"Each trial's {workers_per_trial} workers ask for {workers_per_trial * wanted:g} "
                              f"{kind}(s) in all ({wanted:g} each) but the Ray cluster has {have.get(kind, 0):g}; "
                              f"set budget.workers_per_trial to at most {fits}, or add nodes.")


def default_concurrency(cpus_per_trial: float) -> int:
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1) // cpus_per_trial))
