"""The Celery side of the benchmark's tick: a broker virtual host of its own and Celery workers
(`wfm-etl worker`, started as `wfm-etl deploy` starts them) for one project's instance."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

RABBITMQ_URL = os.environ.get("WFM_BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("WFM_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def broker_vhost(rabbitmq_url: str = RABBITMQ_URL) -> Iterator[str]:
    """A broker URL on a RabbitMQ virtual host made for the caller and removed afterwards, so
    nothing else sharing the broker takes its tasks (needs `rabbitmqctl`, run as root)."""
    vhost = f"wfm_{uuid.uuid4().hex[:10]}"
    for command in (
        ["rabbitmqctl", "add_vhost", vhost],
        ["rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
    ):
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except FileNotFoundError as exc:
            raise RuntimeError("RabbitMQ is needed: rabbitmqctl is not installed") from exc
        if done.returncode:
            raise RuntimeError(
                f"RabbitMQ is needed: `{' '.join(command)}` failed (is the server running?): "
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
    try:
        yield f"{rabbitmq_url}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "delete_vhost", vhost], capture_output=True, timeout=60)


@contextmanager
def workers(env: Mapping[str, str], home: Path, count: int) -> Iterator[None]:
    """`count` Celery workers of one process each for the instance in `home`, answering
    before this returns; stopped afterwards."""
    from etl.deploy import Deployment, Supervisor

    deployment = Deployment(home, launcher="celery", workers=count)
    supervisor = Supervisor(deployment, env, out=io.StringIO())
    supervisor.processes = [p for p in supervisor.processes if p.worker]
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # this process reads the instance's yaml to ping the workers
    try:
        supervisor.start()
        yield
    finally:
        supervisor.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
