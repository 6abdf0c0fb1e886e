"""`make run`: bootstrap, then run the processor and the API in the foreground, restarting
either if it dies; Ctrl-C stops everything this started."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from permstore.adapters.settings import REPO_ROOT
from permstore.deploy.harness import api_command, bootstrap_command, processor_command

REPO = REPO_ROOT
RESTART_DELAY_SECONDS = 2.0


class RunSettings(BaseSettings):
    """Where `make run` serves the API (environment prefix PERMSTORE_API_)."""

    model_config = SettingsConfigDict(env_prefix="PERMSTORE_API_", extra="ignore")

    port: int = Field(default=8080, ge=1, le=65535)
    # One worker on a small machine that also runs Kafka and Cassandra (docs/performance.md);
    # on a host of its own, one per core.
    workers: int = Field(default=1, ge=1)


def _say(message: str) -> None:
    print(f"[permstore] {message}", flush=True)


def _commands(port: int, workers: int) -> dict[str, list[str]]:
    return {"processor": processor_command(), "api": api_command(port, workers)}


def _banner(port: int) -> None:
    from permstore.services.auth_settings import AuthSettings, build_issuer

    token = build_issuer(AuthSettings()).issue(
        "user:dev", "*", "check,write,audit,admin", timedelta(hours=12)
    )
    url = f"http://127.0.0.1:{port}"
    grant = (
        '{"events":[{"event_id":"demo-1","tenant":"acme","type":"grant","actor":"user:admin",'
        '"occurred_at":"2026-01-01T00:00:00Z","principal":"user:alice",'
        '"resource":"doc:acme/eng/*","permission":"read"}]}'
    )
    check = (
        '{"tenant":"acme","principal":"user:alice","resource":"doc:acme/eng/spec-1",'
        '"action":"read"}'
    )
    # A separate token for the link: the console exchanges it once for a session cookie.
    link_token = build_issuer(AuthSettings()).issue(
        "user:dev", "*", "check,write,audit,admin", timedelta(hours=12)
    )
    _say(f"console:    {url}/console/signin/link?token={link_token}&tenant=acme")
    _say("            (one-time sign-in link for user:dev on tenant acme; operators may switch)")
    _say(f"API docs:   {url}/docs   (OpenAPI: {url}/openapi.json)")
    _say(f"health:     {url}/healthz   ready: {url}/readyz   metrics: {url}/metrics")
    _say("dev token (tenant *, all scopes, 12 h):")
    print(f"export PERMSTORE_TOKEN={token}", flush=True)
    _say("try:")
    print(
        f'curl -s -X POST {url}/v1/events -H "Authorization: Bearer $PERMSTORE_TOKEN" '
        f"-H 'content-type: application/json' -d '{grant}'",
        flush=True,
    )
    print(
        f'curl -s -X POST {url}/v1/check -H "Authorization: Bearer $PERMSTORE_TOKEN" '
        f"-H 'content-type: application/json' -d '{check}'",
        flush=True,
    )


def main() -> int:
    """Supervise the processor and API until interrupted."""
    settings = RunSettings()
    port, workers = settings.port, settings.workers
    _say("bootstrapping topics and tables")
    subprocess.run(bootstrap_command(), check=True, cwd=REPO)
    commands = _commands(port, workers)
    children: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    for name, command in commands.items():
        _say(f"starting {name}")
        children[name] = subprocess.Popen(command, cwd=REPO)
    _banner(port)
    parent = os.getppid()
    try:
        while not stopping:
            time.sleep(0.5)
            if os.getppid() != parent:
                _say("parent process ended; stopping")
                break
            for name, child in list(children.items()):
                if child.poll() is not None and not stopping:
                    _say(f"{name} exited with {child.returncode}; restarting")
                    time.sleep(RESTART_DELAY_SECONDS)
                    children[name] = subprocess.Popen(commands[name], cwd=REPO)
    finally:
        _say("stopping processor and API")
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children.values():
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
