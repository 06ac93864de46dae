"""Run scenarios: every job in a fresh ``python -m bench.worker`` process (LLaMA-Factory's in its
own venv, the others in lmforge's venv without extras: bench/peers.py), then tables, targets and
the JSON file (``results.json``) plus a Markdown copy of the tables (``results.md``).

The matmul peaks are measured first, in the same run. Before every job the CPU gate
(bench/gate.py) waits for other processes to go below half a core. A scenario's jobs run
``repeats`` times interleaved (A B C A B C ...), so a slow minute of the machine hits every tool
alike; their figures are folded into medians with the spread (bench/stats.py). Every training
job saves its adapter; the first successful run's is then scored by ``eval_saved`` in a fresh
process: one held-out loss function for every tool."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import gate as gate_mod
from bench import peers, report, stats, targets
from bench.scenarios import Scenario

REPO = Path(__file__).resolve().parents[1]


def machine() -> dict:
    import torch

    from lmforge.training.cpu_threads import physical_cores

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


TRAIN_JOBS = {"lmforge_lm", "trl_sft", "hf_trainer", "lf_sft"}  # scored by eval_saved


def run_job(spec: dict, work: Path, name: str, timeout: int, python: str | None = None) -> dict:
    spec_file, out_file = work / f"{name}.spec.json", work / f"{name}.result.json"
    spec_file.write_text(json.dumps(spec, indent=1))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(REPO)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    with (work / f"{name}.log").open("w") as log:
        try:
            proc = subprocess.run([python or sys.executable, "-m", "bench.worker",
                                   str(spec_file), str(out_file)], cwd=REPO, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, timeout=timeout)
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
    if "skipped" in r:
        return f"{label}: skipped ({r['skipped']})"
    for key, unit in (("real_tokens_per_s", "real tok/s"), ("tokens_per_s", "gen tok/s"),
                      ("examples_per_s", "ex/s"), ("matmul_flops", "FLOP/s")):
        if key in r:
            gate = r.get("gate", {})
            load = "" if gate.get("busy_cores") is None else \
                f", others {gate['busy_cores']:.2f} cores"
            return f"{label}: {r[key]:,.1f} {unit} ({r.get('job_seconds', 0):.0f} s{load})"
    return f"{label}: done"


class Runner:
    """One benchmark run: the gate before every job, peer interpreters, repetitions."""

    def __init__(self, quick: bool, threads: int, timeout: int, precision: str = "fp32",
                 repeats: int | None = None, gate_timeout: float = 60.0, echo=print,
                 gate=gate_mod.wait_until_idle):
        self.quick, self.threads, self.timeout, self.precision = quick, threads, timeout, \
            precision
        self.repeats, self.gate_timeout, self.echo, self.gate = repeats, gate_timeout, echo, gate

    def job(self, spec: dict, work: Path, name: str, gated: bool = True) -> dict:
        python = peers.lmforge_python()[0]
        if spec.get("python") == "llamafactory":
            python, why = peers.llamafactory_python()
            if python is None:
                return {"skipped": why}
        gate = self.gate(timeout=self.gate_timeout) if gated else None
        r = run_job(spec, work, name, self.timeout, python)
        if gate is not None:
            r["gate"] = gate
        if "error" in r and "traceback" in r:
            self.echo(r["traceback"])
        return r

    def scenario(self, s: Scenario, work: Path) -> dict[str, dict]:
        jobs = s.jobs(work, self.quick, self.threads)
        repeats = self.repeats or (1 if self.quick else s.repeats)
        runs: dict[str, list[dict]] = {label: [] for label, _ in jobs}
        for rep in range(repeats):  # interleaved: A B C A B C ...
            # the machine's speed drifts over a run (25 % within half an hour here): each round's
            # jobs are measured against a peak probed just before them (report.add_utilisation)
            probe = self.peaks(work, f"peak-r{rep + 1}", f"[{s.key}] ") \
                if s.kind == "train" else None
            for label, spec in jobs:
                if runs[label] and "skipped" in runs[label][0]:
                    continue
                name = f"{_slug(label)}-r{rep + 1}"
                spec = dict(spec, save_dir=str(work / name / "saved"))
                if spec["job"] in TRAIN_JOBS:
                    spec["precision"] = self.precision
                r = self.job(spec, work, name)
                if probe is not None and "error" not in probe:
                    r["matmul_peak"] = probe
                runs[label].append(r)
                tag = f" (run {rep + 1}/{repeats})" if repeats > 1 else ""
                self.echo(f"[{s.key}] {_line(label + tag, r)}")
        out = {}
        for label, spec in jobs:
            if "skipped" in runs[label][0]:
                out[label] = runs[label][0]
                continue
            out[label] = stats.aggregate(runs[label])
            first = next((r for r in runs[label] if "error" not in r), None)
            if first is not None and spec["job"] in TRAIN_JOBS and spec.get("eval_file"):
                ev = self.job(dict(spec, job="eval_saved", python=None,
                                   save_dir=str(work / f"{_slug(label)}-r"
                                                f"{runs[label].index(first) + 1}" / "saved")),
                              work, f"{_slug(label)}-eval", gated=False)  # not timed
                out[label]["eval_loss"] = ev.get("eval_loss")
                if "error" in ev:
                    out[label]["eval_error"] = ev["error"]
        return out

    def peaks(self, work: Path, name: str = "peak", prefix: str = "[peak] ") -> dict:
        r = self.job({"job": "matmul", "threads": self.threads,
                      "size": 512 if self.quick else 1024}, work, name)
        self.echo(f"{prefix}{_line('matmul fp32 peak', r)}")
        return r


def run(scenarios: list[Scenario], quick: bool, threads: int, out: Path, timeout: int,
        echo=print, precision: str = "fp32", repeats: int | None = None,
        gate_timeout: float = 60.0) -> dict:
    started = time.perf_counter()
    info = machine()
    info["threads"] = threads
    runner = Runner(quick, threads, timeout, precision, repeats, gate_timeout, echo)
    results: dict[str, dict[str, dict]] = {}
    peak: dict = {}
    with tempfile.TemporaryDirectory(prefix="lmforge-bench-") as tmp:
        if any(s.kind in ("train", "mfu") for s in scenarios):
            peak = runner.peaks(Path(tmp))  # measured in the same run, before the jobs
        for s in scenarios:
            work = Path(tmp) / s.key
            work.mkdir()
            results[s.key] = {"machine": peak} if s.kind == "mfu" else runner.scenario(s, work)
    lf = peers.llamafactory_python()
    info["llamafactory"] = lf[1] if lf[0] else {"skipped": lf[1]}
    info["lmforge_venv"] = peers.lmforge_python()[1]
    report.add_common_count(results)
    report.add_utilisation(results, peak)
    info["load_average_end"] = os.getloadavg()
    doc = {"machine": info, "quick": quick, "precision": precision,
           "seconds": time.perf_counter() - started, "matmul_peak": peak,
           "matmul_peak_flops": peak.get("matmul_flops"),
           "scenarios": {s.key: {"name": s.name, "title": s.title,
                                 "table": report.table(s.kind, results[s.key]),
                                 "jobs": results[s.key]} for s in scenarios},
           "targets": targets.targets(results)}
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
        lines += [f"- {n}" for n in s["table"].get("notes", [])]
        lines += [""] if s["table"].get("notes") else []
    lines += ["### Targets", "", _md_row(["target", "value", "goal", "met", "note"]),
              _md_row(["---"] * 5)]
    for t in doc["targets"]:
        met = {True: "met", False: "not met", None: "—"}[t["met"]]
        lines.append(_md_row([t["target"], t["value"], t["goal"], met, t["note"]]))
    if "lmforge_venv" in doc.get("machine", {}):
        lines += ["", venv_line(doc["machine"])]
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
        for n in s["table"].get("notes", []):
            console.print(f"  note: {n}", markup=False, highlight=False)
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
    console.print(venv_line(m), markup=False, highlight=False)


def venv_line(m: dict) -> str:
    """Which venv lmforge's and TRL's jobs ran in, and the optional libraries it holds."""
    v = m.get("lmforge_venv", {})
    extra = ", ".join(v.get("optional_installed", [])) or "none"
    return (f"lmforge, TRL, HF Trainer ran in {v.get('venv', '?')} (of bitsandbytes, torchao, "
            f"deepspeed installed: {extra})" + (f"; {v['note']}" if v.get("note") else ""))
