"""The plain LoRA/QLoRA trainer: datasets, masking, a real run, cancel/resume, QLoRA, merge.

Runs use the real bundled SmolLM2-135M-Instruct on the CPU and stay tiny (a few steps, 8
records, max_length 96-128) so the whole file takes a couple of minutes. No database.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from manualqa.lib.local_models import DEFAULT_MODEL_FOLDER, ensure_default_model
from training.presets import TrainingConfig
from training.trainer import (
    ProgressEvent,
    TrainingCancelled,
    bnb_cpu_4bit_available,
    build_dataset,
    build_sft_trainer,
    load_merged_and_generate,
    model_context_length,
    resolve_base_model,
    train,
)

MODELS_DIR = Path(__file__).resolve().parents[2] / "var" / "models"
QA_PAIRS = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "model3-manual" / "qa_pairs.json"
)

PAIRS = [
    ("What colour is the charge port light while charging?", "It pulses green."),
    ("How do I open the charge port?", "Press the button on the charge cable."),
    ("Where is the tyre repair kit?", "Under the floor of the rear trunk."),
    ("What does a red brake light on the display mean?", "The brake fluid level is low."),
    ("How do I turn on the hazard lights?", "Press the button above the rear view mirror."),
    ("How long can Sentry Mode record?", "Up to one hour per event."),
    ("What tyre pressure should I use?", "The pressure on the label inside the door pillar."),
    ("How do I reset the trip meter?", "Touch Reset under Trips on the touchscreen."),
]

# Tiny runs: a few steps, no warmup (a warmup step trains at learning rate 0).
TINY = TrainingConfig(
    max_steps=4,
    max_length=96,
    per_device_train_batch_size=2,
    warmup_ratio=0.0,
    save_steps=0,
    logging_steps=1,
)


def chat_record(question: str, answer: str, system: str = "") -> dict:
    messages = [{"role": "system", "content": system}] if system else []
    return {
        "messages": [
            *messages,
            {"role": "user", "content": question},
            {"role": "assistant", "content": answer},
        ]
    }


def inst_record(question: str, answer: str) -> dict:
    return {"text": f"<s>[INST] {question} [/INST] {answer} </s>"}


def alpaca_record(question: str, answer: str) -> dict:
    return {"instruction": question, "input": "", "output": answer}


RECORD_MAKERS = {"chat_template": chat_record, "seed_inst": inst_record, "alpaca": alpaca_record}


@pytest.fixture(scope="module")
def default_model() -> Path:
    return ensure_default_model(MODELS_DIR)


@pytest.fixture(scope="module")
def tokenizer(default_model):
    return AutoTokenizer.from_pretrained(default_model)


def run(tmp_path: Path, **overrides):
    """train() on the default model with the tiny config and the chat records."""
    kwargs = {
        "base_model": "",
        "train_records": [chat_record(q, a) for q, a in PAIRS],
        "eval_records": [],
        "prompt_format": "chat_template",
        "system_prompt": "",
        "config": TINY,
        "output_dir": tmp_path / "job",
        "models_dir": MODELS_DIR,
    }
    return train(**{**kwargs, **overrides})


# --------------------------------------------------------------------------------------------
# Records -> trl's dataset (the records themselves: tests/manualqa/lib/test_prompt_formats.py)


@pytest.mark.parametrize(
    ("prompt_format", "record", "message"),
    [
        ("seed_inst", {"text": "no markers here"}, 'Record 2: "text" must look like'),
        ("seed_inst", {"text": "<s>[INST] q [/INST] </s>"}, "Record 2: no answer after [/INST]."),
        ("alpaca", {"instruction": "q", "output": ""}, 'Record 2: "output" must be a non-empty'),
        (
            "chat_template",
            {"messages": [{"role": "user", "content": "q"}]},
            "Record 2: the last message must be the assistant's answer.",
        ),
        ("chat_template", {"messages": "q"}, 'Record 2: "messages" must be a list'),
    ],
)
def test_bad_records_are_refused_naming_the_record(tokenizer, prompt_format, record, message):
    good = RECORD_MAKERS[prompt_format]("q?", "a.")
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        build_dataset([good, record], prompt_format=prompt_format, tokenizer=tokenizer)


def test_unknown_prompt_format_is_refused(tokenizer):
    with pytest.raises(ValueError, match="Unknown prompt format 'sharegpt'"):
        build_dataset([{"text": "x"}], prompt_format="sharegpt", tokenizer=tokenizer)


def test_chat_format_needs_a_tokenizer_with_a_chat_template(default_model):
    bare = AutoTokenizer.from_pretrained(default_model)
    bare.chat_template = None
    with pytest.raises(ValueError, match="tokenizer has no chat template"):
        build_dataset([chat_record("q?", "a.")], prompt_format="chat_template", tokenizer=bare)


def test_dataset_is_in_trls_prompt_completion_format(tokenizer):
    records = [inst_record(q, a) for q, a in PAIRS[:3]]
    dataset = build_dataset(records, prompt_format="seed_inst", tokenizer=tokenizer)
    assert dataset.column_names == ["prompt", "completion"]
    assert len(dataset) == 3
    assert dataset[0]["prompt"] == f"<s>[INST] {PAIRS[0][0]} [/INST]"


@pytest.mark.slow
@pytest.mark.parametrize("prompt_format", ["chat_template", "seed_inst", "alpaca"])
def test_trl_labels_mask_the_prompt_and_train_the_answer(
    default_model, tokenizer, tmp_path, prompt_format
):
    question, answer = PAIRS[1]
    records = [RECORD_MAKERS[prompt_format](q, a) for q, a in PAIRS[:2]]
    trainer = build_sft_trainer(
        model=AutoModelForCausalLM.from_pretrained(default_model),
        tokenizer=tokenizer,
        train_dataset=build_dataset(records, prompt_format=prompt_format, tokenizer=tokenizer),
        eval_dataset=None,
        config=TINY,
        checkpoints_dir=tmp_path,
    )
    batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
    input_ids, labels = batch["input_ids"][1].tolist(), batch["labels"][1].tolist()
    trained = [i for i, label in enumerate(labels) if label != -100]
    masked_text = tokenizer.decode(input_ids[: trained[0]])
    trained_text = tokenizer.decode([input_ids[i] for i in trained])

    assert trained == list(range(trained[0], trained[-1] + 1))  # one contiguous answer span
    assert question in masked_text and answer not in masked_text
    assert trained_text.strip().startswith(answer)
    # The end-of-turn token is trained too, so the model learns to stop.
    assert tokenizer.eos_token in trained_text[len(answer) :]
    assert all(labels[i] == input_ids[i] for i in trained)


def _answer_loss_trainer(default_model, tokenizer, tmp_path, *, dtype=torch.float32):
    """A trainer on four real pairs with no LoRA dropout, so two losses can be compared."""
    records = [inst_record(q, a) for q, a in PAIRS[:4]]
    return build_sft_trainer(
        model=AutoModelForCausalLM.from_pretrained(default_model, dtype=dtype),
        tokenizer=tokenizer,
        train_dataset=build_dataset(records, prompt_format="seed_inst", tokenizer=tokenizer),
        eval_dataset=None,
        config=dataclasses.replace(TINY, lora_dropout=0.0, per_device_train_batch_size=4),
        checkpoints_dir=tmp_path,
    )


def _loss_and_grads(trainer, compute_loss, batch):
    model = trainer.model
    model.train()
    model.zero_grad()
    loss = compute_loss(trainer, model, dict(batch), num_items_in_batch=None)
    loss.backward()
    grads = {
        name: param.grad.clone()
        for name, param in model.named_parameters()
        if param.requires_grad and param.grad is not None
    }
    model.zero_grad()
    return float(loss.detach()), grads


def test_answer_token_loss_equals_trls_loss_and_gradients(default_model, tokenizer, tmp_path):
    from trl import SFTTrainer

    from training.trainer import AnswerTokenSFTTrainer

    trainer = _answer_loss_trainer(default_model, tokenizer, tmp_path)
    assert isinstance(trainer, AnswerTokenSFTTrainer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    # Padding and prompts are both in this batch, so both must be left out of the loss.
    assert (batch["attention_mask"] == 0).any() and (batch["labels"] == -100).sum() > 4

    ours, our_grads = _loss_and_grads(trainer, AnswerTokenSFTTrainer.compute_loss, batch)
    trls, trl_grads = _loss_and_grads(trainer, SFTTrainer.compute_loss, batch)

    assert math.isfinite(ours) and ours > 0
    assert ours == pytest.approx(trls, rel=1e-4)
    assert our_grads.keys() == trl_grads.keys() and len(our_grads) > 0
    # The two losses sum the same terms in another order, so an element near zero can differ
    # by more than 0.1% of itself (an AMD CPU without AVX-512 did); each gradient as a whole
    # must stay within 0.1% of TRL's.
    for name, grad in our_grads.items():
        error = float((grad - trl_grads[name]).norm())
        assert error <= 1e-3 * float(trl_grads[name].norm()) + 1e-9, (name, error)
    # Divided by the tokens of the whole accumulated batch when the Trainer says how many.
    halved = AnswerTokenSFTTrainer.compute_loss(
        trainer,
        trainer.model,
        dict(batch),
        num_items_in_batch=2 * int((batch["labels"][:, 1:] != -100).sum()),
    )
    assert float(halved.detach()) == pytest.approx(ours / 2, rel=1e-4)


def test_answer_token_loss_of_a_batch_without_answers_is_zero(default_model, tokenizer, tmp_path):
    from training.trainer import AnswerTokenSFTTrainer

    trainer = _answer_loss_trainer(default_model, tokenizer, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    batch["labels"] = torch.full_like(batch["labels"], -100)
    trainer.model.train()
    loss = AnswerTokenSFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
    loss.backward()  # still connected to the model: an all-masked batch must not crash
    assert float(loss) == 0.0


def test_evaluation_keeps_trls_loss(default_model, tokenizer, tmp_path):
    from trl import SFTTrainer

    from training.trainer import AnswerTokenSFTTrainer

    trainer = _answer_loss_trainer(default_model, tokenizer, tmp_path)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    trainer.model.eval()
    assert not trainer._answer_loss_applies(trainer.model, batch, return_outputs=False)
    trainer.model.train()
    assert trainer._answer_loss_applies(trainer.model, batch, return_outputs=False)
    assert not trainer._answer_loss_applies(trainer.model, batch, return_outputs=True)
    # In evaluation the loss is trl's own, the same value either way.
    trainer.model.eval()
    with torch.no_grad():
        ours = AnswerTokenSFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
        trls = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
    assert math.isfinite(float(ours)) and float(ours) == float(trls)


def test_cpu_runs_use_eager_attention_up_to_the_length_where_it_is_faster(tmp_path):
    from training.trainer.sft import CPU_EAGER_ATTENTION_MAX_LENGTH, _attention, _load_base

    short = dataclasses.replace(TINY, max_length=CPU_EAGER_ATTENTION_MAX_LENGTH)
    long = dataclasses.replace(TINY, max_length=CPU_EAGER_ATTENTION_MAX_LENGTH + 1)
    assert _attention(short, cuda=False) == {"attn_implementation": "eager"}
    assert _attention(long, cuda=False) == {}
    assert _attention(short, cuda=True) == {}  # GPUs keep the model's fused kernels

    model_path = ensure_default_model(MODELS_DIR)
    assert _load_base(model_path, short, cuda=False).config._attn_implementation == "eager"
    assert _load_base(model_path, long, cuda=False).config._attn_implementation == "sdpa"


def test_a_bf16_lora_run_on_cpu_keeps_a_bf16_base_and_fp32_adapters(tmp_path):
    from training.trainer.sft import _load_base

    model_path = ensure_default_model(MODELS_DIR)
    base = _load_base(model_path, dataclasses.replace(TINY, precision="bf16"), cuda=False)
    assert {param.dtype for param in base.parameters()} == {torch.bfloat16}
    fp32 = _load_base(model_path, dataclasses.replace(TINY, precision="fp32"), cuda=False)
    assert {param.dtype for param in fp32.parameters()} == {torch.float32}

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    records = [inst_record(q, a) for q, a in PAIRS[:2]]
    trainer = build_sft_trainer(
        model=base,
        tokenizer=tokenizer,
        train_dataset=build_dataset(records, prompt_format="seed_inst", tokenizer=tokenizer),
        eval_dataset=None,
        config=dataclasses.replace(TINY, precision="bf16"),
        checkpoints_dir=tmp_path,
    )
    trainable = {p.dtype for p in trainer.model.parameters() if p.requires_grad}
    frozen = {p.dtype for p in trainer.model.parameters() if not p.requires_grad}
    assert trainable == {torch.float32} and frozen == {torch.bfloat16}


# --------------------------------------------------------------------------------------------
# Base models and this machine


def test_resolve_base_model(default_model, tmp_path):
    assert resolve_base_model("", models_dir=MODELS_DIR) == MODELS_DIR / DEFAULT_MODEL_FOLDER
    assert resolve_base_model("default", models_dir=MODELS_DIR) == default_model
    assert resolve_base_model(str(default_model), models_dir=tmp_path) == default_model
    assert resolve_base_model("mistralai/Mistral-7B-v0.1", models_dir=tmp_path) == (
        "mistralai/Mistral-7B-v0.1"
    )
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=f"The base model folder {missing} does not exist"):
        resolve_base_model(str(missing), models_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="holds no config.json"):
        resolve_base_model(str(tmp_path), models_dir=tmp_path)
    with pytest.raises(ValueError, match="neither a local folder nor a Hub id"):
        resolve_base_model("not a model!", models_dir=tmp_path)


def test_model_context_length_comes_from_the_config(default_model):
    assert model_context_length(default_model) == 8192


def test_bnb_cpu_4bit_probe_answers_once():
    first = bnb_cpu_4bit_available()
    assert isinstance(first, bool)
    assert bnb_cpu_4bit_available() is first
    assert bnb_cpu_4bit_available.cache_info().hits >= 1


# --------------------------------------------------------------------------------------------
# Refusals before any training


def test_a_config_this_machine_cannot_run_is_refused_before_loading(tmp_path):
    with pytest.raises(ValueError, match="8-bit LoRA needs a CUDA GPU"):
        run(tmp_path, config=dataclasses.replace(TINY, method="8bit"))
    with pytest.raises(ValueError, match="beyond the base model's context of 8192 tokens"):
        run(tmp_path, config=dataclasses.replace(TINY, max_length=10_000))
    assert not (tmp_path / "job").exists()


def test_no_train_records_is_refused(tmp_path):
    with pytest.raises(ValueError, match="There are no training records"):
        run(tmp_path, train_records=[])


def test_resume_without_a_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint to resume from"):
        run(tmp_path, resume_from_checkpoint=True)


# --------------------------------------------------------------------------------------------
# Real runs


@pytest.mark.slow
def test_lora_run_reports_every_step_saves_the_adapter_and_merges(tmp_path):
    events: list[ProgressEvent] = []
    lines: list[str] = []
    result = run(
        tmp_path,
        eval_records=[chat_record(q, a) for q, a in PAIRS[:2]],
        on_progress=events.append,
        on_log=lines.append,
    )

    steps = [event for event in events if event.eval_loss is None]
    assert [event.step for event in steps] == [1, 2, 3, 4]
    assert {event.total_steps for event in events} == {4}
    losses = [event.loss for event in steps]
    assert all(loss is not None and math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]
    assert all(event.tokens_per_s and event.tokens_per_s > 0 for event in steps)
    assert steps[-1].eta_s == 0 and steps[-1].epoch == pytest.approx(1.0)
    assert any(line.startswith("step 4/4, loss ") for line in lines)

    assert result.steps == 4
    assert result.final_train_loss == pytest.approx(losses[-1])
    assert result.eval_loss is not None and math.isfinite(result.eval_loss)
    assert events[-1].eval_loss == pytest.approx(result.eval_loss)
    assert result.train_tokens > 0 and result.train_seconds > 0 and result.tokens_per_s > 0
    assert result.device.startswith("cpu")
    assert [sample["question"] for sample in result.samples] == [PAIRS[0][0], PAIRS[1][0]]
    assert all(sample["answer"].strip() for sample in result.samples)

    assert (result.adapter_dir / "adapter_model.safetensors").is_file()
    assert json.loads((result.adapter_dir / "adapter_config.json").read_text())["r"] == 8
    assert (result.merged_dir / "model.safetensors").is_file()
    assert not list(result.merged_dir.parent.glob(".merged-*"))  # no staging left behind
    merged_config = AutoConfig.from_pretrained(result.merged_dir)
    assert getattr(merged_config, "quantization_config", None) is None
    answer = load_merged_and_generate(result.merged_dir, PAIRS[0][0], max_new_tokens=12)
    assert answer.strip()


@pytest.mark.slow
def test_stop_saves_a_checkpoint_and_resume_finishes_the_run(tmp_path):
    events: list[ProgressEvent] = []
    with pytest.raises(TrainingCancelled) as caught:
        run(
            tmp_path,
            on_progress=events.append,
            should_stop=lambda: bool(events) and events[-1].step >= 2,
        )
    checkpoint = tmp_path / "job" / "checkpoints" / "checkpoint-2"
    assert caught.value.step == 2 and caught.value.checkpoint == checkpoint
    assert (checkpoint / "adapter_model.safetensors").is_file()
    assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == 2
    assert not (tmp_path / "job" / "adapter").exists()

    # A stop asked for before training (say, while the model loaded) takes effect after step 1.
    with pytest.raises(TrainingCancelled) as early:
        run(tmp_path / "early", should_stop=lambda: True)
    assert early.value.step == 1
    assert early.value.checkpoint == tmp_path / "early" / "job" / "checkpoints" / "checkpoint-1"

    resumed: list[ProgressEvent] = []
    result = run(tmp_path, on_progress=resumed.append, resume_from_checkpoint=True)
    assert [event.step for event in resumed] == [3, 4]
    assert result.steps == 4
    assert (result.merged_dir / "model.safetensors").is_file()


@pytest.mark.slow
def test_qlora_trains_on_cpu_and_merges_into_full_precision(tmp_path):
    if not bnb_cpu_4bit_available():
        pytest.skip("bitsandbytes cannot run nf4 layers forward and backward on this CPU")
    events: list[ProgressEvent] = []
    config = dataclasses.replace(TINY, method="qlora", max_steps=2)
    result = run(tmp_path, config=config, on_progress=events.append)
    assert [event.step for event in events] == [1, 2]
    assert all(math.isfinite(event.loss) for event in events)
    adapter = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert adapter["r"] == 8
    merged = AutoModelForCausalLM.from_pretrained(result.merged_dir)
    assert getattr(merged.config, "quantization_config", None) is None
    assert {parameter.dtype for parameter in merged.parameters()} == {torch.float32}


@pytest.mark.slow
@pytest.mark.needs_model3
def test_real_model3_pairs_train_with_finite_losses(tmp_path, model3_dir):
    pairs = json.loads((model3_dir / "qa_pairs.json").read_text())[:8]
    events: list[ProgressEvent] = []
    result = run(
        tmp_path,
        train_records=[chat_record(pair["question"], pair["answer"]) for pair in pairs],
        config=dataclasses.replace(
            TINY, max_steps=2, max_length=128, per_device_train_batch_size=4
        ),
        on_progress=events.append,
    )
    assert [event.step for event in events] == [1, 2]
    assert all(math.isfinite(event.loss) for event in events)
    assert result.tokens_per_s > 0


def test_resume_skips_a_checkpoint_the_trainer_did_not_finish_writing(tmp_path):
    from training.trainer import latest_complete_checkpoint

    checkpoints = tmp_path / "checkpoints"
    for step, state in ((2, "{}"), (10, "{}"), (12, None), (11, '{"trunc')):
        folder = checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    (checkpoints / "checkpoint-tmp").mkdir()

    # 12 has no state file and 11 a torn one (killed mid-save); 10 sorts above 2 numerically.
    assert latest_complete_checkpoint(checkpoints) == checkpoints / "checkpoint-10"
    assert latest_complete_checkpoint(tmp_path / "missing") is None


def test_auto_precision_is_bf16_only_where_the_hardware_computes_it(monkeypatch):
    from training.trainer import machine

    monkeypatch.setattr(machine, "cpu_has_native_bf16", lambda: True)
    assert machine.resolve_precision("auto", cuda=False) == "bf16"
    monkeypatch.setattr(machine, "cpu_has_native_bf16", lambda: False)
    assert machine.resolve_precision("auto", cuda=False) == "fp32"
    assert machine.resolve_precision("fp16", cuda=False) == "fp16"  # explicit choices stand


def test_native_bf16_is_read_from_this_cpus_flags():
    from pathlib import Path

    from training.trainer import cpu_has_native_bf16

    flags = Path("/proc/cpuinfo").read_text()
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)
