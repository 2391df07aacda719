"""Runs a reference script inside its own virtualenv of pinned packages.

The golden-fixture scripts need reference libraries (Hugging Face
tokenizers, sentence-transformers on PyTorch) that `make test` does not.
`ensure(...)` returns at once when the running interpreter already has the
right versions; otherwise it creates the venv (under build/ by default, or
where the named environment variable says), installs the pins and re-executes
the calling script with that venv's python."""
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_REEXEC = "RAGD_REFVENV_REEXEC"


def ensure(script, packages, ready, venv_env, default_dir):
    """script: the caller's __file__; packages: pip requirement strings;
    ready(): True when the pins are importable; venv_env: the variable that
    may name the venv; default_dir: its name under build/."""
    try:
        if ready():
            return
    except ImportError:
        pass
    if os.environ.get(_REEXEC):
        sys.exit(f"{' '.join(packages)} could not be imported")
    venv = Path(os.environ.get(venv_env, REPO / "build" / default_dir))
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.check_call([sys.executable, "-m", "venv", str(venv)])
    subprocess.check_call([str(py), "-m", "pip", "install", "-q", *packages])
    os.execve(str(py), [str(py), script] + sys.argv[1:], dict(os.environ, **{_REEXEC: "1"}))
