"""Tools (java, mvn, the venv's Python) and fetching the jars with Maven."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from permstore.deploy.stack.config import (
    CASSANDRA_POM,
    CASSANDRA_VERSIONS,
    DEPENDENCY_PLUGIN,
    KAFKA_POM,
    KAFKA_VERSIONS,
    MARKER_NAME,
    REQUIRED_JAVA,
    LocalStackError,
    Settings,
    say,
)
from permstore.deploy.stack.processes import our_pid, servers

_JAVA_INSTALL_HINT = (
    "install a Java 17 runtime (Debian/Ubuntu: `apt-get install openjdk-17-jre-headless`; "
    "macOS: `brew install openjdk@17`) or point PERMSTORE_JAVA at a Java 17 `java` binary"
)


def java_major_version(java: Path) -> int | None:
    """The major version of a `java` binary, or None if it cannot be run."""
    try:
        out = subprocess.run(
            [str(java), "-XshowSettings:properties", "-version"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    for line in out.stderr.splitlines():
        name, _, value = line.strip().partition("=")
        if name.strip() == "java.specification.version":
            spec = value.strip()
            major = spec.split(".")[1] if spec.startswith("1.") else spec.split(".")[0]
            return int(major) if major.isdigit() else None
    return None


def find_java(settings: Settings) -> Path:
    """A Java 17 binary: PERMSTORE_JAVA, else JAVA_HOME, else PATH, else well-known places."""
    explicit = settings.env.get("PERMSTORE_JAVA", "").strip()
    if explicit:
        path = Path(explicit)
        version = java_major_version(path)
        if version != REQUIRED_JAVA:
            raise LocalStackError(
                f"PERMSTORE_JAVA={explicit} is Java {version}, Cassandra 5.0 here needs Java "
                f"{REQUIRED_JAVA}: {_JAVA_INSTALL_HINT}"
            )
        return path
    candidates: list[tuple[str, Path]] = []
    java_home = settings.env.get("JAVA_HOME", "").strip()
    if java_home:
        candidates.append(("JAVA_HOME", Path(java_home) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(("PATH", Path(on_path)))
    for pattern in ("/usr/lib/jvm/*17*/bin/java", "/opt/homebrew/opt/openjdk@17/bin/java"):
        candidates.extend(("well-known", p) for p in sorted(Path("/").glob(pattern.lstrip("/"))))
    candidates.extend(
        ("well-known", p)
        for p in sorted(
            Path("/Library/Java/JavaVirtualMachines").glob("*17*/Contents/Home/bin/java")
        )
    )
    seen: set[Path] = set()
    for origin, path in candidates:
        real = path.resolve() if path.exists() else path
        if real in seen:
            continue
        seen.add(real)
        version = java_major_version(path)
        if version == REQUIRED_JAVA:
            if origin != candidates[0][0]:
                say(f"using Java {REQUIRED_JAVA} from {path} ({origin})")
            return path
        if version is not None:
            say(f"skipping {path} ({origin}): Java {version}, need Java {REQUIRED_JAVA}")
    raise LocalStackError(f"no Java {REQUIRED_JAVA} found: {_JAVA_INSTALL_HINT}")


def find_mvn() -> str:
    """The `mvn` binary, or a clear error naming what to install."""
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalStackError(
            "Maven (`mvn`) is not on PATH: install it (Debian/Ubuntu: `apt-get install maven`; "
            "macOS: `brew install maven`); it fetches the Kafka and Cassandra jars"
        )
    return mvn


@dataclasses.dataclass(frozen=True)
class FetchSpec:
    """What to fetch for one server."""

    name: str
    pom: Path
    lib: Path
    versions: tuple[str, ...]
    main_jar_prefix: str

    def maven_args(self, version: str) -> list[str]:
        """Extra -D/-P arguments selecting a version."""
        if self.name == "kafka":
            args = [f"-Dkafka.version={version}"]
            if version.startswith("4."):
                args.append("-Dkafka4")
            return args
        return [f"-Dcassandra.version={version}"]


def _fetch_specs(settings: Settings) -> list[FetchSpec]:
    return [
        FetchSpec(
            name="kafka",
            pom=KAFKA_POM,
            lib=settings.kafka_lib,
            versions=(settings.kafka_version,) if settings.kafka_version else KAFKA_VERSIONS,
            main_jar_prefix="kafka_2.13-",
        ),
        FetchSpec(
            name="cassandra",
            pom=CASSANDRA_POM,
            lib=settings.cassandra_lib,
            versions=(
                (settings.cassandra_version,) if settings.cassandra_version else CASSANDRA_VERSIONS
            ),
            main_jar_prefix="cassandra-all-",
        ),
    ]


def read_marker(lib: Path) -> dict[str, str] | None:
    """The fetch marker of a lib folder (version, pom hash), or None."""
    try:
        data = json.loads((lib / MARKER_NAME).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _fetch_one(spec: FetchSpec, mvn: str, busy: bool) -> str:
    marker = read_marker(spec.lib)
    pom_hash = _sha256(spec.pom)
    wanted = spec.versions[0] if len(spec.versions) == 1 else None
    if (
        marker is not None
        and marker.get("pom_sha256") == pom_hash
        and (wanted is None or marker.get("version") == wanted)
    ):
        say(f"{spec.name} {marker.get('version')}: jars already in {spec.lib}")
        return marker.get("version", "?")
    if marker is not None and busy:
        # A running JVM opens class-path jars lazily: never swap them under it.
        say(
            f"{spec.name}: the jars in {spec.lib} are outdated (pom or version changed) but "
            f"{spec.name} runs from them; keeping them until it is stopped (`down`, `fetch`)"
        )
        return marker.get("version", "?")
    spec.lib.parent.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    for version in spec.versions:
        staging = spec.lib.parent / f".{spec.name}.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        say(f"{spec.name} {version}: fetching jars with Maven into {spec.lib} ...")
        started = time.monotonic()
        cmd = [
            mvn,
            "-B",
            "-q",
            "-Dstyle.color=never",
            "-f",
            str(spec.pom),
            f"{DEPENDENCY_PLUGIN}:copy-dependencies",
            f"-DoutputDirectory={staging}",
            "-DincludeScope=runtime",
            *spec.maven_args(version),
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        jars = sorted(staging.glob(f"{spec.main_jar_prefix}*.jar")) if staging.exists() else []
        if result.returncode != 0 or not jars:
            output = (result.stdout + result.stderr).strip().splitlines()
            failures.append(f"{version}: " + " | ".join(output[-5:]))
            say(f"{spec.name} {version}: not available from Maven, trying the next version")
            shutil.rmtree(staging, ignore_errors=True)
            continue
        resolved = jars[0].name[len(spec.main_jar_prefix) : -len(".jar")]
        marker_data = {
            "artifact": spec.main_jar_prefix.rstrip("-"),
            "version": resolved,
            "requested": version,
            "pom_sha256": pom_hash,
            "jars": str(len(list(staging.glob("*.jar")))),
            "fetched_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / MARKER_NAME).write_text(json.dumps(marker_data, indent=2), encoding="utf-8")
        old = spec.lib.parent / f".{spec.name}.old-{os.getpid()}"
        if spec.lib.exists():
            spec.lib.rename(old)
        staging.rename(spec.lib)
        shutil.rmtree(old, ignore_errors=True)
        say(
            f"{spec.name} {resolved}: {marker_data['jars']} jars in {spec.lib} "
            f"({time.monotonic() - started:.1f}s)"
        )
        return resolved
    raise LocalStackError(
        f"Maven could not fetch {spec.name} (tried {', '.join(spec.versions)}):\n  "
        + "\n  ".join(failures)
    )


def fetch(settings: Settings) -> dict[str, str]:
    """Fetch (or reuse) the Kafka and Cassandra jars; return the versions by server name."""
    mvn = find_mvn()
    running = servers(settings)
    return {
        spec.name: _fetch_one(spec, mvn, busy=our_pid(running[spec.name]) is not None)
        for spec in _fetch_specs(settings)
    }


def ensure_fetched(settings: Settings) -> dict[str, str]:
    versions: dict[str, str] = {}
    for spec in _fetch_specs(settings):
        marker = read_marker(spec.lib)
        if marker is None or marker.get("pom_sha256") != _sha256(spec.pom):
            return fetch(settings)
        wanted = settings.kafka_version if spec.name == "kafka" else settings.cassandra_version
        if wanted and marker.get("version") != wanted:
            return fetch(settings)
        versions[spec.name] = marker.get("version", "?")
    return versions
