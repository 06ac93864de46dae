"""lmforge convert for the seeds' configs: a CausalLM-Lit data + model YAML pair (with its own
--D./--M. overrides), LLMs-Tool's config.py (read with ast, never run) and run_clm's flags
(--lora_rank, --max_source_length, comma-string --target_modules). Each converts, lists what it
cannot map with why, and validates; the run_clm one trains on the tiny model."""

from __future__ import annotations

import json

import pytest
import yaml

from lmforge.cli import main
from tests.conftest import REPO, write_jsonl

# the seed's model file (000: CausalLM-Lit README), pointed at the tiny model
LIT_MODEL = """pretrain:
  path: builtin:tiny-llama           #预训练参数
  args:
    trust_remote_code: true          #初始化模型的参数
    device_map: auto

tokenizer:
  manual_add_eos_token: true         #分词器的一些特殊行为

config:
  use_cache: false                   #generation 时的参数

peft:                                #peft 微调，下面是 LoRA 的参数配置
  lora_alpha: 16
  lora_dropout: 0.05
  r: 8
  bias: none

optim:                               #优化器的配置
  lr: 1e-4
"""
LIT_DATA = """datamodule:
  class_name: news.NewsDM #指定数据的类
  args:
    data_dir: data/news   #设定数据文件夹的位置

metrics:                  #声明是一个需要计算指标的数据集
  name: f1                #验证的指标为 f1
  eval_calculate: true    #声明在验证的时候进行计算指标
"""
# LLMs-Tool's config.py (003), trimmed: mode + dataclass defaults, one default not a literal
LLMS_TOOL = """import os
from dataclasses import dataclass, field
from typing import Optional

mode = 'sft_train'
raise SystemExit('this file must never be executed by lmforge')


@dataclass
class ModelArguments:
    model_type: str = field(default='internlm', metadata={'help': 'Model type.',
                                                          'choices': ['chatglm', 'llama']})
    model_path: str = field(default='builtin:tiny-llama')
    checkpoint_dir: Optional[str] = field(default=None)
    quantization: Optional[str] = field(default='bnb')
    quantization_bit: Optional[int] = field(default=None)
    cache_dir: Optional[str] = field(default=os.path.join('~', '.cache'))


@dataclass
class DataTrainingArguments:
    prompt_template: Optional[str] = field(default='internlm')
    train_file_dir: Optional[str] = field(default='datasets/finetune/train')
    test_file: Optional[str] = field(default='datasets/finetune/test')


@dataclass
class TrainingArguments:
    fine_tuning_type: str = field(default='lora')
    use_firefly_loss: bool = field(default=True)
    output_dir: str = field(default='checkpoint/sft')
    num_train_epochs: int = 1
    max_steps: int = 2
    per_device_train_batch_size: int = 2
    gradient_accumulation_steps: int = 2
    learning_rate: float = 1e-3
    lora_rank: int = 8
    lora_alpha: int = 32
    lora_target: str = field(default='q_proj,v_proj')
    fp16: bool = False
    ntk_scaling: bool = False
"""
RUN_CLM = ["--model_name_or_path", "builtin:tiny-llama", "--train_file", "data/train.json",
           "--prompt_column", "q", "--response_column", "a", "--use_peft", "--lora_rank", "4",
           "--target_modules", "q_proj,v_proj", "--max_source_length", "48",
           "--max_target_length", "16", "--do_train", "--output_dir", "out", "--max_steps", "2",
           "--per_device_train_batch_size", "2", "--learning_rate=1e-3", "--fp16", "false",
           "--overwrite_output_dir", "--block_size", "64", "--fan_in_fan_out", "true"]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [json.loads(x) for x in (REPO / "examples/data/toy_train.jsonl").read_text()
            .splitlines()][:16]
    write_jsonl(tmp_path / "data/news/train.json", rows)
    write_jsonl(tmp_path / "datasets/finetune/train/part.json", rows)
    write_jsonl(tmp_path / "data/train.json",
                [{"q": r["instruction"], "a": r["output"]} for r in rows])
    return tmp_path


def _convert(argv, capsys) -> tuple[dict, str]:
    assert main(["convert", argv[0], "-o", "run.yaml", *argv[1:]]) == 0
    err = " ".join(capsys.readouterr().err.split())
    text = open("run.yaml", encoding="utf-8").read()
    return yaml.safe_load(text), err


def _validates(capsys, *extra) -> None:
    code = main(["validate", "run.yaml", *extra])
    out = capsys.readouterr()
    assert code == 0, out.out + out.err


def test_causallm_lit_pair_with_its_own_overrides(workdir, capsys):
    (workdir / "data.yaml").write_text(LIT_DATA, encoding="utf-8")
    (workdir / "model.yaml").write_text(LIT_MODEL, encoding="utf-8")
    run, err = _convert(["causallm-lit", "data.yaml", "model.yaml", "--M.optim.lr=3e-4",
                         "--D.datamodule.args.data_dir=data/news"], capsys)
    assert run["model"] == {"path": "builtin:tiny-llama", "trust_remote_code": True}
    assert run["adapter"] == {"type": "lora", "alpha": 16, "dropout": 0.05, "r": 8}
    assert run["train"]["learning_rate"] == 3e-4  # --M.optim.lr reached the model file
    assert run["data"]["train"] == "data/news"
    assert run["eval"] == {"metrics": ["f1"], "best_metric": "f1", "during_training": True}
    assert "not mapped (2)" in err
    assert "datamodule.class_name: 'news.NewsDM' is a Python data class" in err
    assert "pretrain.args.device_map: a from_pretrained argument lmforge does not pass" in err
    _validates(capsys, "eval.during_training=false")  # no eval data in the seed's data file


def test_llms_tool_config_is_read_without_running_it(workdir, capsys):
    (workdir / "config.py").write_text(LLMS_TOOL, encoding="utf-8")
    run, err = _convert(["llms-tool", "config.py"], capsys)
    assert run["stage"] == "sft"
    assert run["model"] == {"path": "builtin:tiny-llama", "template": "auto"}
    assert run["adapter"] == {"type": "lora", "r": 8, "alpha": 32,
                              "target_modules": ["q_proj", "v_proj"]}
    assert run["data"] == {"train": "datasets/finetune/train"}
    assert run["train"]["max_steps"] == 2 and run["train"]["grad_accum"] == 2
    assert "test_file: test after training: lmforge eval RUN --data-file FILE" in err
    assert "ntk_scaling: not a LLMs-Tool argument lmforge knows" in err
    assert "cache_dir: config.py:17: the default is not a literal" in err
    assert "'internlm' is not an lmforge template" in err
    _validates(capsys)


def test_llms_tool_modes_that_are_commands(workdir, capsys):
    (workdir / "config.py").write_text(LLMS_TOOL.replace("sft_train", "rm_batch_test"))
    _, err = _convert(["llms-tool", "config.py"], capsys)
    assert "mode: mode 'rm_batch_test' is not training: lmforge eval RUN" in err


def test_run_clm_flags_convert_validate_and_train(workdir, capsys):
    run, err = _convert(["run-clm", "--", *RUN_CLM], capsys)
    assert run["stage"] == "sft"
    # the seed's defaults for what is not given (alpha 32, dropout 0.05); the comma string
    # --target_modules became a list
    assert run["adapter"] == {"type": "lora", "alpha": 32, "dropout": 0.05, "r": 4,
                              "target_modules": ["q_proj", "v_proj"]}
    assert run["data"] == {"train": "data/train.json", "columns": {"prompt": "q", "response": "a"},
                           "format": "prompt_response", "max_source_length": 48,
                           "max_target_length": 16, "max_length": 64}
    assert run["train"]["learning_rate"] == 1e-3 and run["train"]["overwrite"] is True
    assert "fan_in_fan_out: peft sets fan_in_fan_out by itself" in err
    _validates(capsys)
    assert main(["train", "run.yaml"]) == 0
    assert (workdir / "out" / "adapter_model.safetensors").is_file()


def test_run_clm_flag_errors(capsys):
    assert main(["convert", "run-clm"]) == 2
    assert "no run_clm flags given" in capsys.readouterr().err
    assert main(["convert", "run-clm", "--", "--lora_rank", "8", "--lora_rank", "4"]) == 2
    assert "--lora_rank is given twice" in capsys.readouterr().err
