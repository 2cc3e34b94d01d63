"""Execute every course notebook headlessly and summarise the run (``make run``).

For each notebook, in teaching order, a worker process runs it with nbclient
in the mini profile, offline, and writes the executed ``.ipynb`` and an HTML
copy to the output folder. One progress line per notebook, then a table of
status, wall seconds, the kernel's peak memory and stderr warnings. The exit
status is 1 if any notebook failed, and the failing cell is named.

Usage: python scripts/run_notebooks.py [PATH ...] [--out build] [--timeout 900]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Notebooks always run offline in the mini profile, whatever the caller's environment sets.
RUN_ENV = {
    "COURSE_PROFILE": "mini",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONHASHSEED": "0",
}


def find_notebooks(paths: list[str]) -> list[Path]:
    """Return the notebooks under ``paths`` (files or folders), sorted by path."""
    found = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found += [p for p in path.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
        elif path.suffix == ".ipynb" and path.exists():
            found.append(path)
        else:
            raise SystemExit(f"error: {name} is not a notebook or a folder of notebooks.")
    return sorted(set(found))


def _peak_child_rss_mb() -> float:
    # ru_maxrss of waited-for children: the kernel, the only child this worker starts.
    # Linux reports kilobytes and macOS bytes.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak / (1024 * 1024 if sys.platform == "darwin" else 1024)


def _failing_cell(notebook) -> dict | None:
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
                return {
                    "cell": index + 1,
                    "first_line": first_line[:80],
                    "error": f"{output.get('ename')}: {output.get('evalue')}"[:300],
                }
    return None


def _count_warnings(notebook) -> int:
    count = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stderr" and "Warning" in output.get("text", ""):
                count += 1
    return count


def run_one(notebook_path: Path, out_dir: Path, timeout: int) -> dict:
    """Execute one notebook and write ``<out>/<relative path>.ipynb`` and ``.html``."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError
    from nbconvert import HTMLExporter

    notebook = nbformat.read(notebook_path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook_path.parent)}},
    )
    start = time.perf_counter()
    status, failure = "ok", None
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError) as error:
        status = "FAILED"
        failure = _failing_cell(notebook) or {"cell": None, "first_line": "", "error": str(error)[:300]}
    seconds = time.perf_counter() - start

    try:
        relative = notebook_path.resolve().relative_to(ROOT / "notebooks")
    except ValueError:
        relative = Path(notebook_path.name)
    target = out_dir / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, target)
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(notebook)
    target.with_suffix(".html").write_text(html, encoding="utf-8")
    return {
        "notebook": str(relative.with_suffix("")),
        "status": status,
        "seconds": round(seconds, 1),
        "peak_mb": round(_peak_child_rss_mb()),
        "warnings": _count_warnings(notebook),
        "failure": failure,
        "output": str(target),
    }


def print_table(results: list[dict]) -> None:
    """Print the closing summary table."""
    width = max(len("notebook"), *(len(r["notebook"]) for r in results))
    header = f"{'notebook':<{width}}  {'status':<6}  {'wall s':>7}  {'peak MB':>7}  {'warnings':>8}"
    print("\n" + header)
    print("-" * len(header))
    for r in results:
        print(f"{r['notebook']:<{width}}  {r['status']:<6}  {r['seconds']:>7.1f}  "
              f"{r['peak_mb']:>7}  {r['warnings']:>8}")
    print("-" * len(header))
    total = sum(r["seconds"] for r in results)
    failed = [r for r in results if r["status"] != "ok"]
    print(f"{len(results) - len(failed)} passed, {len(failed)} failed; {total:.1f} s in all.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["notebooks"], help="notebooks or folders")
    parser.add_argument("--out", default="build", help="folder for executed notebooks and HTML")
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(RUN_ENV)
    out_dir = Path(args.out)

    if args.worker:
        print(json.dumps(run_one(Path(args.paths[0]), out_dir, args.timeout)))
        return 0

    notebooks = find_notebooks(args.paths)
    if not notebooks:
        print("No notebooks found.", file=sys.stderr)
        return 1
    print(f"Running {len(notebooks)} notebooks (profile mini, offline); output in {out_dir}/")
    results = []
    for number, path in enumerate(notebooks, start=1):
        print(f"[{number}/{len(notebooks)}] {path} ...", end=" ", flush=True)
        worker = subprocess.run(
            [sys.executable, __file__, str(path), "--out", str(out_dir),
             "--timeout", str(args.timeout), "--worker"],
            capture_output=True, text=True, env=os.environ,
        )
        lines = worker.stdout.strip().splitlines()
        if worker.returncode != 0 or not lines:
            result = {"notebook": str(path), "status": "FAILED", "seconds": 0.0, "peak_mb": 0,
                      "warnings": 0, "failure": {"cell": None, "first_line": "",
                                                 "error": worker.stderr.strip()[-300:]}}
        else:
            result = json.loads(lines[-1])
        results.append(result)
        if result["status"] == "ok":
            print(f"ok in {result['seconds']:.1f} s, peak {result['peak_mb']} MB")
        else:
            failure = result["failure"]
            print(f"FAILED at cell {failure['cell']} ({failure['first_line']!r}): {failure['error']}")

    print_table(results)
    return 1 if any(r["status"] != "ok" for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
