"""What the GPU workers can run, published by each worker and read when a launch is validated.

The web server usually has no GPU while the workers on the ``gpu`` queue do (often on other
machines), so "can this job run?" must be answered by the workers, not by the web process.
Each worker consuming ``gpu`` probes itself once at startup (CUDA devices, whether bitsandbytes
runs 4-bit layers on its CPU) and keeps a Redis key alive with that record, refreshed by a
daemon thread; the key expires soon after a worker dies. Validation then asks: does any live
gpu worker have CUDA (qlora, 8bit, fp16) or CPU 4-bit support (qlora on CPU)? Where no worker
has published anything (a first start, tests without a worker), it falls back to probing the
process it runs in, and says so.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import asdict, dataclass

from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "manualqa:gpu-worker:"
TTL_S = 15 * 60
REFRESH_S = 5 * 60


@dataclass(frozen=True)
class WorkerCapabilities:
    hostname: str
    cuda: bool
    devices: tuple[str, ...]
    bnb_cpu_4bit: bool
    torch: str

    @classmethod
    def from_json(cls, raw: bytes | str) -> WorkerCapabilities:
        data = json.loads(raw)
        return cls(
            hostname=str(data["hostname"]),
            cuda=bool(data["cuda"]),
            devices=tuple(data.get("devices") or ()),
            bnb_cpu_4bit=bool(data.get("bnb_cpu_4bit")),
            torch=str(data.get("torch", "")),
        )


def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2)


def probe(hostname: str | None = None) -> WorkerCapabilities:
    """This process's capabilities (a second or two: it imports torch and tries bnb)."""
    import torch

    from training.trainer import bnb_cpu_4bit_available

    cuda = torch.cuda.is_available()
    devices = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return WorkerCapabilities(
        hostname=hostname or socket.gethostname(),
        cuda=cuda,
        devices=devices,
        bnb_cpu_4bit=(not cuda) and bnb_cpu_4bit_available(),
        torch=torch.__version__,
    )


def publish(capabilities: WorkerCapabilities, *, ttl_s: int = TTL_S) -> None:
    _redis().set(KEY_PREFIX + capabilities.hostname, json.dumps(asdict(capabilities)), ex=ttl_s)


def withdraw(hostname: str) -> None:
    _redis().delete(KEY_PREFIX + hostname)


def live_workers() -> list[WorkerCapabilities]:
    """Every gpu worker whose record has not expired; empty when Redis cannot be reached."""
    try:
        client = _redis()
        keys = sorted(client.scan_iter(match=KEY_PREFIX + "*", count=100))
        values = client.mget(keys) if keys else []
    except Exception as exc:  # no broker: validation falls back to this process
        logger.warning("cannot read gpu worker capabilities: %s", exc)
        return []
    workers = []
    for value in values:
        if value is None:
            continue
        try:
            workers.append(WorkerCapabilities.from_json(value))
        except (ValueError, KeyError, TypeError):
            continue
    return workers


@dataclass(frozen=True)
class Verdict:
    """What validation may assume about the worker that will run a job."""

    cuda: bool
    bnb_cpu_4bit: bool
    source: str  # "workers" (published records) or "this process" (no worker has published)


def training_capabilities(*, needs_bnb_probe: bool) -> Verdict:
    workers = live_workers()
    if workers:
        return Verdict(
            cuda=any(worker.cuda for worker in workers),
            bnb_cpu_4bit=any(worker.bnb_cpu_4bit for worker in workers),
            source="workers",
        )
    import torch

    from training.trainer import bnb_cpu_4bit_available

    cuda = torch.cuda.is_available()
    return Verdict(
        cuda=cuda,
        bnb_cpu_4bit=(not cuda) and needs_bnb_probe and bnb_cpu_4bit_available(),
        source="this process",
    )


def start_publisher(hostname: str) -> Publisher | None:
    """Probe this worker and start publishing its record; None when the probe failed.

    Called before the worker takes its first task, not from the publishing thread: the probe
    imports torch, transformers and accelerate, and a task importing them on the main thread at
    the same moment got a partially initialised module ("cannot import name 'dispatch_model'
    from partially initialized module 'accelerate.big_modeling'"), after which every task that
    needed them failed until the worker restarted."""
    try:
        capabilities = probe(hostname)
    except Exception:
        logger.exception("probing this worker's capabilities failed")
        return None
    publisher = Publisher(capabilities)
    publisher.start()
    return publisher


class Publisher(threading.Thread):
    """Keeps this worker's record (``capabilities``, probed before: :func:`probe` imports torch,
    transformers and accelerate, which a task on the main thread may be importing at the same
    time) alive until the worker stops."""

    def __init__(self, capabilities: WorkerCapabilities) -> None:
        super().__init__(name="gpu-capabilities", daemon=True)
        self.capabilities = capabilities
        self.hostname = capabilities.hostname
        self.stopped = threading.Event()

    def run(self) -> None:
        capabilities = self.capabilities
        logger.info("gpu worker capabilities: %s", capabilities)
        while True:
            try:
                publish(capabilities)
            except Exception as exc:
                logger.warning("cannot publish gpu worker capabilities: %s", exc)
            if self.stopped.wait(REFRESH_S):
                break

    def stop(self) -> None:
        self.stopped.set()
        try:
            withdraw(self.hostname)
        except Exception as exc:
            logger.warning("cannot withdraw gpu worker capabilities: %s", exc)
