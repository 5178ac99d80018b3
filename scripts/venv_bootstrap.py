"""Shared start-up of the repo's Python scripts: run inside a git-ignored virtual environment.

    from venv_bootstrap import reexec_in_venv
    reexec_in_venv(".venv-bench", {"torch": "torch", "numpy": "numpy"})

Outside that environment this creates it if missing, installs the packages whose imports fail
(torch from the CPU wheel in /opt/wheels when present, override with $TORCH_WHEEL; the rest
from PyPI) and re-executes the calling script under the environment's python with the same
arguments. Inside it, it returns at once. Progress goes to stderr, so a script's stdout stays
its own (e.g. one JSON line).
"""
import os
import subprocess
import sys

REPO_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
DEFAULT_TORCH_WHEEL = "/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def reexec_in_venv(name, requirements):
    """`name`: the venv folder under the repo root; `requirements`: import name -> pip spec."""
    venv_dir = os.path.join(REPO_ROOT, name)
    python = os.path.join(venv_dir, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv_dir):
        return
    if not os.path.exists(python):
        print(f"creating virtual environment {venv_dir}", file=sys.stderr, flush=True)
        subprocess.check_call([sys.executable, "-m", "venv", venv_dir])
        # Keep the environment out of git even where .gitignore does not name it.
        with open(os.path.join(venv_dir, ".gitignore"), "w") as f:
            f.write("*\n")
    missing = [spec for module, spec in requirements.items()
               if subprocess.run([python, "-c", f"import {module}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0]
    if missing:
        wheel = os.environ.get("TORCH_WHEEL", DEFAULT_TORCH_WHEEL)
        missing = [(wheel if os.path.exists(wheel) else spec) if spec == "torch" else spec for spec in missing]
        print(f"installing {', '.join(missing)} into {venv_dir}", file=sys.stderr, flush=True)
        subprocess.check_call([python, "-m", "pip", "install", "--quiet"] + missing, stdout=sys.stderr)
    script = os.path.abspath(sys.argv[0])
    os.execv(python, [python, script] + sys.argv[1:])
