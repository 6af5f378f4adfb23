"""Builds the client driver programs once per session (and reuses them across sessions
while their sources are unchanged): Java classes with javac against the kafka-clients
jars, Go binaries with the Debian-packaged sarama / kafka-go. Outputs go to .deps/."""

import functools
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEPS = HERE / ".deps"
JAVA_LIB = DEPS / "java"
GOPATH = "/usr/share/gocode"


def _digest(paths, extra=""):
    h = hashlib.sha256(extra.encode())
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _missing(what, hint):
    raise RuntimeError(f"{what} missing: run compat-tests/install.sh ({hint})")


@functools.lru_cache(maxsize=None)
def java_classpath():
    """Compiles compat-tests/java/*.java; returns the classpath to run them with."""
    jars = sorted(JAVA_LIB.glob("*.jar"))
    if not (JAVA_LIB / "kafka-clients.jar").exists():
        _missing("kafka-clients.jar", "java/install.sh")
    if not shutil.which("javac"):
        _missing("javac", "java/install.sh")
    sources = sorted((HERE / "java").glob("*.java"))
    out = DEPS / "java-classes" / _digest(sources, "".join(j.name for j in jars))
    if not (out / ".ok").exists():
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        cp = os.pathsep.join(str(j) for j in jars)
        r = subprocess.run(["javac", "-nowarn", "-d", str(out), "-cp", cp] + [str(s) for s in sources], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"javac failed:\n{r.stdout}\n{r.stderr}")
        (out / ".ok").write_text("")
        _forget_stale_builds(out)
    os.utime(out)  # last used now
    return os.pathsep.join([str(out)] + [str(j) for j in jars])


def _forget_stale_builds(keep, pattern="*", days=7):
    """Removes builds of other sources not used for `days`: a build another checkout of
    the repository (a worktree sharing .deps) is running must not vanish under it."""
    import time

    cutoff = time.time() - days * 86400
    for old in keep.parent.glob(pattern):
        if old != keep and old.stat().st_mtime < cutoff:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink(missing_ok=True)


def java_cmd(main_class, *args):
    return [
        "java",
        "-Xshare:auto",
        "-XX:TieredStopAtLevel=1",
        "-XX:+UseSerialGC",
        "-Xmx256m",
        "-cp",
        java_classpath(),
        main_class,
        *[str(a) for a in args],
    ]


@functools.lru_cache(maxsize=None)
def go_binary(name):
    """Builds compat-tests/go/<name>/ with the Debian Go packages; returns the binary."""
    if not shutil.which("go"):
        _missing("go", "go/install.sh")
    src = HERE / "go" / name
    sources = sorted(src.glob("*.go"))
    out = DEPS / "go" / f"{name}-{_digest(sources)}"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, GOPATH=GOPATH, GO111MODULE="off", GOFLAGS="", GOCACHE=str(DEPS / "go-cache"))
        tmp = out.with_suffix(".tmp")
        r = subprocess.run(["go", "build", "-o", str(tmp), "."], cwd=src, env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"go build {name} failed:\n{r.stdout}\n{r.stderr}")
        tmp.rename(out)
        _forget_stale_builds(out, f"{name}-*")
    os.utime(out)  # last used now
    return str(out)


@functools.lru_cache(maxsize=None)
def node_driver():
    d = HERE / "node"
    if not (d / "node_modules" / "kafkajs").exists():
        _missing("kafkajs", "node/install.sh")
    return ["node", str(d / "driver.js")]
