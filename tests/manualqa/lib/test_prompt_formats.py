"""The one home of the prompt formats: training records, and the parity of training and serving.

A fine-tuned model answers well only if serving sends it the very text it was trained on; the
parity tests render one question both ways, through the functions training and chat call.
"""

from __future__ import annotations

import pytest

from chat.prompts import direct_messages, render
from manualqa.lib.prompt_formats import (
    CHAT_FORMATS,
    FORMATS,
    TrainExample,
    canonical,
    chat_format,
    format_inst,
    parse_training_record,
    render_inference,
    to_training_record,
)

QUESTION = "How do I open the charge port?"
ANSWER = "Press the button on the charge cable."


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


# --------------------------------------------------------------------------------------------
# Training and serving render the same bytes up to the answer


@pytest.mark.parametrize("system_prompt", ["", "Answer from the owner's manual."])
@pytest.mark.parametrize("fmt", FORMATS)
def test_serving_renders_the_prompt_training_trained_on(fmt, system_prompt):
    record = to_training_record(QUESTION, ANSWER, fmt=fmt, system_prompt=system_prompt)
    trained = parse_training_record(record, prompt_format=fmt)

    # What chat sends a fine-tuned model: the question alone, with the training system prompt,
    # in the assistant's vocabulary for the format.
    served = render(
        direct_messages(question=QUESTION, system_prompt=system_prompt),
        prompt_format=chat_format(fmt),
    )

    if fmt == "chat_template":
        # Both sides hand the same messages to the model's own chat template.
        assert served.prompt is None
        assert served.messages == trained.prompt
        assert trained.completion == [{"role": "assistant", "content": ANSWER}]
    else:
        assert served.messages is None
        assert served.prompt == trained.prompt
        assert served.prompt.encode() == trained.prompt.encode()
        assert trained.completion.strip().startswith(ANSWER)
        if fmt == "seed_inst":
            # The model stops at the marker its training text ended the answer with.
            assert trained.completion.endswith(" </s>") and "</s>" in served.stop


@pytest.mark.parametrize("fmt", FORMATS)
def test_both_vocabularies_name_the_same_formats(fmt):
    assert canonical(fmt) == fmt
    assert canonical(chat_format(fmt)) == fmt
    assert chat_format(fmt) in CHAT_FORMATS
    messages = direct_messages(question=QUESTION, system_prompt="S")
    assert render_inference(messages, prompt_format=fmt) == render_inference(
        messages, prompt_format=chat_format(fmt)
    )


def test_an_unknown_format_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="Unknown prompt format 'sharegpt': use chat_template"):
        to_training_record(QUESTION, ANSWER, fmt="sharegpt")
    with pytest.raises(ValueError, match="Unknown prompt format 'sharegpt'"):
        render_inference([{"role": "user", "content": QUESTION}], prompt_format="sharegpt")


def test_a_seed_inst_system_prompt_holding_a_marker_is_refused():
    with pytest.raises(ValueError, match=r"cannot contain the prompt marker '\[INST\]'"):
        to_training_record(QUESTION, ANSWER, fmt="seed_inst", system_prompt="Use [INST] tags.")


def test_a_seed_inst_record_reads_back_as_its_pair():
    text = to_training_record(QUESTION, ANSWER, fmt="seed_inst")["text"]
    assert text == format_inst(QUESTION, ANSWER)
    example = parse_training_record({"text": text}, prompt_format="seed_inst")
    assert (example.question, example.reference) == (QUESTION, ANSWER)


# --------------------------------------------------------------------------------------------
# Records -> prompt/completion


def test_seed_inst_record_splits_right_after_inst():
    example = parse_training_record(
        inst_record("How do I open the charge port?", "Press the button."),
        prompt_format="seed_inst",
    )
    assert example == TrainExample(
        prompt="<s>[INST] How do I open the charge port? [/INST]",
        completion=" Press the button. </s>",
        question="How do I open the charge port?",
        reference="Press the button.",
    )


def test_seed_inst_gets_the_system_prompt_once_where_llama2_puts_it():
    record = inst_record("How do I open the charge port?", "Press the button.")
    example = parse_training_record(record, prompt_format="seed_inst", system_prompt="Be brief.")
    assert example.prompt == (
        "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHow do I open the charge port? [/INST]"
    )
    assert example.question == "How do I open the charge port?"
    # A record exported with the system prompt keeps its own and gets no second one.
    again = parse_training_record(
        {"text": example.prompt + example.completion},
        prompt_format="seed_inst",
        system_prompt="Be brief.",
    )
    assert again.prompt == example.prompt and again.question == example.question


def test_alpaca_record_renders_the_alpaca_prompt():
    example = parse_training_record(
        alpaca_record("How do I open the charge port?", "Press the button."),
        prompt_format="alpaca",
    )
    assert example.prompt == (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nHow do I open the charge port?\n\n"
        "### Response:\n"
    )
    assert example.completion == "Press the button."
    with_input = parse_training_record(
        {
            "instruction": "Summarise.",
            "input": "Charging page",
            "output": "Plug in.",
            "system": "S",
        },
        prompt_format="alpaca",
    )
    assert (
        with_input.prompt
        == "S\n\n### Instruction:\nSummarise.\n\n### Input:\nCharging page\n\n### Response:\n"
    )


def test_chat_record_prompt_is_every_message_before_the_answer():
    example = parse_training_record(
        chat_record("How do I open the charge port?", "Press the button."),
        prompt_format="chat_template",
        system_prompt="Answer from the manual.",
    )
    assert example.prompt == [
        {"role": "system", "content": "Answer from the manual."},
        {"role": "user", "content": "How do I open the charge port?"},
    ]
    assert example.completion == [{"role": "assistant", "content": "Press the button."}]
    own = parse_training_record(
        chat_record("Q?", "A.", system="Own prompt."),
        prompt_format="chat_template",
        system_prompt="Answer from the manual.",
    )
    assert own.prompt[0] == {"role": "system", "content": "Own prompt."}
    assert len(own.prompt) == 2
