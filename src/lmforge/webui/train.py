"""The Train tab: a form generated from the RunConfig schema, validated like ``lmforge validate``,
written as YAML, run as a ``lmforge train`` subprocess with live progress and loss curve."""

from __future__ import annotations

from pathlib import Path

from lmforge.webui import form
from lmforge.webui.training import TrainJob

OPEN = ("run", "model", "data", "train")
TITLES = {"run": "run", "model": "model", "adapter": "adapter (training method)",
          "data": "data", "train": "train (optimisation)", "eval": "eval"}


class Runs:
    """The training run started from this UI (one at a time)."""

    def __init__(self):
        self.job: TrainJob | None = None

    def start(self, values: dict, config_file: str) -> tuple[str, str, bool]:
        """(message, yaml, started)."""
        tree = form.build_tree(values)
        text = form.to_yaml(tree)
        cfg, message = form.check(tree)
        if cfg is None:
            return message, text, False
        if self.job is not None and self.job.running:
            return "a training run is already running (stop it first)", text, False
        path = Path(config_file or "webui-run.yaml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.job = TrainJob(path, cfg.train.max_steps).start()
        return f"ok: wrote {path}; started `lmforge train {path}`", text, True

    def stop(self) -> str:
        if self.job is None or not self.job.running:
            return "no training run is running"
        self.job.stop()
        return "stopped"


def _frame(points):
    """The loss curve's data; None while there is none (gradio's LinePlot draws no lines
    for data set after an empty frame with a color field)."""
    import pandas as pd

    if not points:
        return None
    frame = pd.DataFrame(points, columns=["step", "curve", "value"])
    return frame.astype({"step": "int64", "curve": "str", "value": "float64"})


def build(gr, runs: Runs, cwd_note: str, prefill: dict | None = None) -> None:
    """The tab's components and events (called inside a ``gr.Blocks`` context); ``prefill``
    gives starting values by dotted key (e.g. model.path: the model the UI was started with)."""
    prefill = prefill or {}
    specs = form.fields()
    comps: dict[str, object] = {}
    method_boxes: dict[str, object] = {}
    from lmforge.config.methods import METHOD_BLOCKS

    gr.Markdown("Fields left at their defaults are not written. Text boxes take YAML values "
                f"(`1e-4`, `[q_proj, v_proj]`, `{{a: b}}`). Relative paths are relative to "
                f"`{cwd_note}`.")
    note = form.chain_note(str(prefill.get("model.path") or ""))
    if note:  # the UI was started on a run: training from it continues that run's model
        gr.Markdown(note.strip())
    for section, group in form.groups(specs).items():
        is_method = section in METHOD_BLOCKS
        title = f"{section}: settings of stage {section}" if is_method else TITLES[section]
        with gr.Accordion(title, open=section in OPEN, visible=not is_method or
                          section == "sft") as box:
            for start in range(0, len(group), 3):
                with gr.Row():
                    for spec in group[start:start + 3]:
                        comps[spec.path] = _component(gr, spec, prefill)
        if is_method:
            method_boxes[section] = box
    with gr.Row():
        config_file = gr.Textbox("webui-run.yaml", label="config file to write", scale=3,
                                 elem_id="config-file")
        check_btn = gr.Button("Validate", scale=1, elem_id="train-validate")
        start_btn = gr.Button("Write YAML and train", variant="primary", scale=1,
                              elem_id="train-start")
        stop_btn = gr.Button("Stop", variant="stop", scale=1)
    message = gr.Textbox(label="validation", lines=3, interactive=False, elem_id="train-check")
    yaml_view = gr.Code(label="run config (YAML)", language="yaml", interactive=False)
    status = gr.Markdown("no training run yet", elem_id="train-status")
    plot = gr.LinePlot(None, x="step", y="value", color="curve", title="loss", height=260,
                       elem_id="train-plot")
    log = gr.Textbox(label="training log", lines=12, max_lines=12, interactive=False,
                     autoscroll=True)
    timer = gr.Timer(1.0, active=False)
    fields = list(comps.values())
    paths = list(comps)

    def values(*args):
        return dict(zip(paths, args))

    def do_check(*args):
        tree = form.build_tree(values(*args))
        return form.check(tree)[1], form.to_yaml(tree)

    def do_start(file, *args):
        msg, text, started = runs.start(values(*args), file)
        return msg, text, gr.Timer(active=started)

    def poll():
        if runs.job is None:
            return "no training run yet", "", _frame([]), gr.Timer(active=False)
        snap = runs.job.snapshot()
        return (snap["status"], snap["log"], _frame(snap["points"]),
                gr.Timer(active=snap["returncode"] is None))

    def show_method(stage):
        return [gr.Accordion(visible=name == stage) for name in method_boxes]

    check_btn.click(do_check, fields, [message, yaml_view])
    start_btn.click(do_start, [config_file, *fields], [message, yaml_view, timer])
    stop_btn.click(lambda: runs.stop(), None, message)
    timer.tick(poll, None, [status, log, plot, timer])
    comps["stage"].change(show_method, comps["stage"], list(method_boxes.values()))


def _component(gr, spec: form.FieldSpec, prefill: dict):
    label = spec.path.split(".", 1)[-1] if "." in spec.path else spec.path
    info = spec.description + (" (required)" if spec.required else "")
    value = prefill.get(spec.path, spec.default)
    if spec.kind == "bool":
        return gr.Checkbox(value, label=label, info=info)
    if spec.kind == "choice":
        return gr.Dropdown(list(spec.choices), value=value, label=label, info=info)
    return gr.Textbox(value, label=label, info=info, max_lines=4, elem_id="f-" +
                      spec.path.replace(".", "-"))
