"""Execute the root notebooks with nbclient, and store them with clean outputs.

One home for running a notebook: ``tests/test_notebooks.py`` runs each in small-run mode
(``SSD_KERAS_SMALL_RUN=1``) and checks its output; ``make notebooks`` runs this file, which
executes each notebook in full mode and rewrites it in place with outputs a reader can trust:

- no machine paths: the repository, ``../shared`` and the notebook's working folder are written
  as ``<repo>``, ``<shared>`` and ``<work>``;
- no timestamps: nbclient's per-cell execution times are dropped;
- no start-up noise: TensorFlow/XLA/absl log lines on stderr are dropped (warnings stay);
- the kernel recorded as a plain ``python3``.

`stored_problems` says what is wrong with a stored notebook (no outputs, an error output, a
machine path left); the tests fail on it.

Usage: ``python tests/notebook_runner.py [NOTEBOOK.ipynb ...]`` (default: every notebook at the
repository root), from the repository root, in the project's virtual environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SSD_KERAS_SHARED", PROJECT_ROOT.parent / "shared"))
KERNEL_NAME = "ssd-keras-notebooks"

# stderr lines of TensorFlow, XLA and absl start-up: they name this machine's CPU and process ids.
_LOG_LINE = re.compile(
    r"^(?:[IWE]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+\] .*"
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWE] \S+\] .*"
    r"|To enable the following instructions: .*"
    r"|.*TqdmWarning: IProgress not found.*"
    r"|\s*from \.autonotebook import tqdm as notebook_tqdm)$"
)


def kernel_spec(directory: Path) -> str:
    """Writes a kernelspec that starts this interpreter (found through JUPYTER_PATH); its name."""
    spec_dir = directory / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "ssd-keras",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return KERNEL_NAME


def notebook_environment(*, small_run: bool, work_dir: Path, jupyter_dir: Path) -> dict[str, str]:
    """The environment variables a notebook run needs (the kernel inherits them)."""
    return {
        "SSD_KERAS_SMALL_RUN": "1" if small_run else "0",
        "SSD_KERAS_SHARED": str(SHARED),
        "SSD_KERAS_TUTORIAL_DIR": str(work_dir),
        # Small runs draw off screen; stored runs keep their figures as inline PNG outputs.
        "MPLBACKEND": "Agg" if small_run else "module://matplotlib_inline.backend_inline",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "JUPYTER_PATH": str(jupyter_dir),
        "PYTHONHASHSEED": "0",
    }


def execute(path: Path, *, timeout: int = 600, kernel_name: str = KERNEL_NAME):
    """Runs the notebook at `path` top to bottom from the repository root; the executed notebook.

    The caller sets the environment (`notebook_environment`) and the kernelspec (`kernel_spec`).
    Raises nbclient's CellExecutionError, naming the cell, if a cell fails.
    """
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(PROJECT_ROOT)}},
    )
    client.execute()
    return notebook


def text_outputs(notebook) -> str:
    """The stream and text/plain outputs of every cell, joined."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append(output.get("text", ""))
            elif "data" in output and "text/plain" in output["data"]:
                parts.append(output["data"]["text/plain"])
    return "\n".join(parts)


def _machine_paths(work_dir: Path) -> list[tuple[str, str]]:
    """(path, placeholder) pairs, longest path first so nested folders are replaced whole."""
    pairs = [
        (str(work_dir.resolve()), "<work>"),
        (str(work_dir), "<work>"),
        (str(SHARED.resolve()), "<shared>"),
        (str(PROJECT_ROOT), "<repo>"),
        (str(Path(sys.prefix)), "<venv>"),
    ]
    return sorted(set(pairs), key=lambda pair: -len(pair[0]))


# Where IPython files a cell's code (it names it in warnings and tracebacks).
_CELL_FILE = re.compile(re.escape(tempfile.gettempdir()) + r"/ipykernel_\d+/\d+\.py")


def _scrub_text(text: str, paths: list[tuple[str, str]]) -> str:
    text = _CELL_FILE.sub("<cell>", text)
    for path, placeholder in paths:
        text = text.replace(path, placeholder)
    return text


def _scrub_stream(output: dict, paths: list[tuple[str, str]]) -> dict | None:
    lines = output["text"].splitlines(keepends=True)
    kept = [line for line in lines if not _LOG_LINE.match(line.rstrip("\n"))]
    if not kept:
        return None
    output["text"] = _scrub_text("".join(kept), paths)
    return output


def scrub(notebook, work_dir: Path):
    """Drops timestamps, start-up log lines and machine paths from an executed notebook in place."""
    paths = _machine_paths(work_dir)
    for cell in notebook.cells:
        cell.get("metadata", {}).pop("execution", None)
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.outputs:
            if output.get("output_type") == "stream":
                output = _scrub_stream(output, paths)
            elif "data" in output and "text/plain" in output["data"]:
                output["data"]["text/plain"] = _scrub_text(output["data"]["text/plain"], paths)
            elif output.get("output_type") == "error":
                output["traceback"] = [_scrub_text(line, paths) for line in output["traceback"]]
            if output is not None:
                outputs.append(output)
        cell.outputs = outputs
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": "python3",
    }
    return notebook


def stored_problems(path: Path) -> list[str]:
    """Why the stored notebook at `path` cannot be read without running it ([] if it can)."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    code_cells = [
        cell for cell in notebook.cells if cell.cell_type == "code" and cell.source.strip()
    ]
    problems = []
    if not any(cell.outputs for cell in code_cells):
        problems.append(f"{path.name}: no code cell has a stored output (run `make notebooks`)")
    for number, cell in enumerate(code_cells, start=1):
        for output in cell.outputs:
            if output.get("output_type") == "error":
                problems.append(
                    f"{path.name}: code cell {number} stores an error: {output.get('ename')}"
                )
    text = json.dumps(notebook)
    for machine_path in (str(PROJECT_ROOT), str(SHARED.resolve()), tempfile.gettempdir() + "/"):
        if machine_path in text:
            problems.append(f"{path.name}: stores the machine path {machine_path!r}")
    return problems


def run_and_store(path: Path, *, timeout: int) -> float:
    """Executes `path` in full mode and rewrites it in place, scrubbed; the seconds it took."""
    import nbformat

    with tempfile.TemporaryDirectory(prefix="ssd-keras-notebook-") as scratch:
        scratch = Path(scratch)
        work_dir = scratch / "work"
        os.environ.update(
            notebook_environment(
                small_run=False, work_dir=work_dir, jupyter_dir=scratch / "jupyter"
            )
        )
        kernel_spec(scratch / "jupyter")
        start = time.perf_counter()
        notebook = execute(path, timeout=timeout)
        seconds = time.perf_counter() - start
        scrub(notebook, work_dir)
    nbformat.write(notebook, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="default: every *.ipynb at the repository root"
    )
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may run")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(PROJECT_ROOT.glob("*.ipynb"))
    for path in paths:
        seconds = run_and_store(path, timeout=args.timeout)
        size_kib = path.stat().st_size / 1024
        print(
            f"{path.name}: executed in {seconds / 60:.1f} min, stored {size_kib:.0f} KiB",
            flush=True,
        )
        for problem in stored_problems(path):
            print(f"  PROBLEM {problem}", flush=True)
    total = sum(path.stat().st_size for path in PROJECT_ROOT.glob("*.ipynb")) / 1024
    print(f"all notebooks: {total:.0f} KiB", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
