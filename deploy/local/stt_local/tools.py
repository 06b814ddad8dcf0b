"""External tools the stack needs (java, mvn) and the Maven-resolved jar directories."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from stt_common.file_lock import file_lock
from stt_local.errors import LocalStackError

MARKER = ".complete"
_HINTS = {
    "java": "install OpenJDK 17 (apt-get install openjdk-17-jre-headless)",
    "mvn": "install Maven (apt-get install maven); it fetches the Kafka and S3Proxy jars once",
}


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise LocalStackError(f"{name} not found: {_HINTS.get(name, 'install it')}")
    return path


def find_pom(name: str) -> Path:
    """The pom shipped next to the package (source checkout) or inside it (installed wheel)."""
    here = Path(__file__).resolve().parent
    for candidate in (here / name, here.parent / name):
        if candidate.is_file():
            return candidate
    raise LocalStackError(f"{name} not found next to {here}; is the repository checkout complete?")


def ensure_jars(pom_name: str, dest: Path) -> Path:
    """Resolve the pom's runtime jars into dest once; a marker file says the copy is complete."""
    if (dest / MARKER).is_file():
        return dest
    with file_lock(dest.with_name(dest.name + ".lock")):
        if (dest / MARKER).is_file():
            return dest
        mvn = require_tool("mvn")
        tmp = dest.with_name(dest.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        cmd = [
            mvn, "-q", "-B", "-f", str(find_pom(pom_name)),
            "dependency:copy-dependencies", f"-DoutputDirectory={tmp}", "-DincludeScope=runtime",
        ]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(tmp.glob("*.jar")):
            output = (result.stdout + result.stderr).strip().splitlines()[-20:]
            raise LocalStackError(
                f"fetching jars for {pom_name} with Maven failed (exit {result.returncode}):\n"
                + "\n".join(output)
            )
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
        (dest / MARKER).write_text("ok\n")
    return dest
