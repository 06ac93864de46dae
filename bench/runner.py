"""Run scenarios: every job in a fresh ``python -m bench.worker`` process, then tables, targets
and the JSON file (``results.json``) plus a Markdown copy of the tables (``results.md``)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.scenarios import Scenario

REPO = Path(__file__).resolve().parents[1]


def machine() -> dict:
    import torch

    from lmforge.training.device import physical_cores

    info = {"platform": platform.platform(), "python": platform.python_version(),
            "logical_cpus": os.cpu_count(), "physical_cores": physical_cores(),
            "load_average_start": os.getloadavg()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        mem = Path("/proc/meminfo").read_text().split("\n")[0].split()[1]
        info["memory_gib"] = round(int(mem) / 2**20, 1)
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    import peft
    import transformers
    import trl

    info["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__,
                        "trl": trl.__version__, "peft": peft.__version__}
    return info


def run_job(spec: dict, work: Path, name: str, timeout: int) -> dict:
    spec_file, out_file = work / f"{name}.spec.json", work / f"{name}.result.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    with (work / f"{name}.log").open("w") as log:
        try:
            proc = subprocess.run([sys.executable, "-m", "bench.worker", str(spec_file),
                                   str(out_file)], cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout} s (log: {work / f'{name}.log'})"}
    if not out_file.is_file():
        return {"error": f"worker exited with {proc.returncode} (log: {work / f'{name}.log'})"}
    return json.loads(out_file.read_text())


def _slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label)


def _line(label: str, r: dict) -> str:
    if "error" in r:
        return f"{label}: FAILED {r['error']}"
    for key, unit in (("real_tokens_per_s", "real tok/s"), ("tokens_per_s", "gen tok/s"),
                      ("examples_per_s", "ex/s"), ("matmul_flops", "FLOP/s")):
        if key in r:
            return f"{label}: {r[key]:,.1f} {unit} ({r.get('job_seconds', 0):.0f} s)"
    return f"{label}: done"


def run(scenarios: list[Scenario], quick: bool, threads: int, out: Path, timeout: int,
        echo=print) -> dict:
    started = time.perf_counter()
    info = machine()
    info["threads"] = threads
    results: dict[str, dict[str, dict]] = {}
    order = sorted(scenarios, key=lambda s: s.kind != "mfu")  # the peak first
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-") as tmp:
        for s in order:
            work = Path(tmp) / s.key
            work.mkdir()
            results[s.key] = {}
            for label, spec in s.jobs(work, quick, threads):
                r = run_job(spec, work, _slug(label), timeout)
                if "error" in r and "traceback" in r:
                    echo(r["traceback"])
                results[s.key][label] = r
                echo(f"[{s.key}] {_line(label, r)}")
    peak = results.get("g", {}).get("machine", {}).get("matmul_flops")
    report.add_common_count(results)
    report.add_mfu(results, peak)
    info["load_average_end"] = os.getloadavg()
    doc = {"machine": info, "quick": quick, "seconds": time.perf_counter() - started,
           "matmul_peak_flops": peak,
           "scenarios": {s.key: {"name": s.name, "title": s.title,
                                 "table": report.table(s.kind, results[s.key]),
                                 "jobs": results[s.key]} for s in scenarios},
           "targets": report.targets(results, peak)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(doc, indent=1, default=str))
    (out / "results.md").write_text(markdown(doc))
    return doc


def _md_row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(doc: dict) -> str:
    lines = []
    for key, s in doc["scenarios"].items():
        lines += [f"### ({key}) {s['title']}", "", _md_row(s["table"]["columns"]),
                  _md_row(["---"] * len(s["table"]["columns"]))]
        lines += [_md_row(r) for r in s["table"]["rows"]] + [""]
    lines += ["### Targets", "", _md_row(["target", "value", "goal", "met", "note"]),
              _md_row(["---"] * 5)]
    for t in doc["targets"]:
        met = {True: "met", False: "not met", None: "—"}[t["met"]]
        lines.append(_md_row([t["target"], t["value"], t["goal"], met, t["note"]]))
    return "\n".join(lines) + "\n"


def show(doc: dict, console) -> None:
    from rich.table import Table

    for key, s in doc["scenarios"].items():
        t = Table(title=f"({key}) {s['title']}", title_justify="left")
        for i, c in enumerate(s["table"]["columns"]):
            t.add_column(c, justify="left" if i == 0 else "right")
        for r in s["table"]["rows"]:
            t.add_row(*r)
        console.print(t)
    t = Table(title="Targets", title_justify="left")
    for c in ("target", "value", "goal", "met", "note"):
        t.add_column(c)
    for x in doc["targets"]:
        met = {True: "[green]met[/]", False: "[red]not met[/]", None: "—"}[x["met"]]
        t.add_row(x["target"], str(x["value"]), x["goal"], met, x["note"])
    console.print(t)
    m = doc["machine"]
    console.print(f"{m.get('cpu', '?')}, {m['physical_cores']} cores, {m['threads']} threads, "
                  f"load average {m['load_average_start'][0]:.1f} -> "
                  f"{m['load_average_end'][0]:.1f}; {doc['seconds']:.0f} s in all")
