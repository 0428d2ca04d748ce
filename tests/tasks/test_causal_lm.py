"""Causal-LM data: prompt template, prompt masking, truncation, subsets, collation, load errors."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from goat.tasks import causal_lm
from goat.tasks.causal_lm import (
    IGNORE_INDEX,
    CausalLMCollator,
    build_example,
    format_conversation,
    format_prompt,
    get_spec,
    load_commonsense_test,
    load_gsm8k_test,
    load_training_subset,
)
from goat.tasks.errors import DataUnavailableError

TEXT_WORDS = (
    "below is an instruction that describes a task. write response appropriately completes the "
    "request. paired with input provides further context. ### instruction: input: response: "
    "what 2 + 3 ? it 5 the answer 7 cat sat on mat dog ran fast ok def f(): return ``` python"
).split()


def make_tokenizer():
    """Word-level, lower-casing tokenizer that adds BOS, built offline."""
    from tokenizers import normalizers

    words = ["<unk>", "<s>", "</s>", "<pad>"] + sorted(set(TEXT_WORDS))
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="<pad>"
    )


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


# --- templates --------------------------------------------------------------------------------


def test_alpaca_templates():
    plain = format_prompt("Add 2 and 3.")
    assert plain.startswith("Below is an instruction that describes a task. Write a response")
    assert plain.endswith("### Instruction:\nAdd 2 and 3.\n\n### Response:\n")
    assert "### Input:" not in plain
    with_input = format_prompt("Add the numbers.", "2, 3")
    assert "paired with an input that provides further context" in with_input
    assert with_input.endswith("### Instruction:\nAdd the numbers.\n\n### Input:\n2, 3\n\n### Response:\n")
    assert format_prompt("Add 2 and 3.", "  ") == plain


def test_conversation_prompt_holds_earlier_answers():
    prompt = format_conversation(["first?", "second?"], ["one"])
    assert prompt.index("first?") < prompt.index("one") < prompt.index("second?")
    assert prompt.endswith("### Instruction:\nsecond?\n\n### Response:\n")
    with pytest.raises(ValueError):
        format_conversation(["a", "b"], [])


# --- masking and truncation -------------------------------------------------------------------


def test_labels_mask_exactly_the_prompt(tokenizer):
    example = build_example(tokenizer, "what is 2 + 3 ?", "the answer is 5", max_length=256)
    prompt_ids = tokenizer(format_prompt("what is 2 + 3 ?"))["input_ids"]
    response_ids = tokenizer("the answer is 5", add_special_tokens=False)["input_ids"]
    ids, labels = example["input_ids"], example["labels"]
    assert ids == prompt_ids + response_ids + [tokenizer.eos_token_id]
    assert ids[0] == tokenizer.bos_token_id
    n_prompt = len(prompt_ids)
    assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:]
    assert IGNORE_INDEX not in labels[n_prompt:]
    assert labels[-1] == tokenizer.eos_token_id
    assert example["attention_mask"] == [1] * len(ids)


def test_with_input_template_is_masked_too(tokenizer):
    example = build_example(tokenizer, "what is it ?", "ok", max_length=256, input_text="cat sat")
    n_prompt = len(tokenizer(format_prompt("what is it ?", "cat sat"))["input_ids"])
    assert example["labels"][:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert example["labels"][n_prompt:] == example["input_ids"][n_prompt:]


@pytest.mark.parametrize("cut", [1, 3, 8])  # 8 drops only the EOS
def test_truncation_keeps_arrays_aligned(tokenizer, cut):
    full = build_example(tokenizer, "what is 2 + 3 ?", "the answer is 5 cat sat on mat", max_length=512)
    n_prompt = full["labels"].count(IGNORE_INDEX)
    max_length = n_prompt + cut
    short = build_example(tokenizer, "what is 2 + 3 ?", "the answer is 5 cat sat on mat", max_length=max_length)
    assert len(short["input_ids"]) == len(short["labels"]) == len(short["attention_mask"]) == max_length
    assert short["input_ids"] == full["input_ids"][:max_length]
    assert short["labels"] == full["labels"][:max_length]
    assert short["labels"][n_prompt:] == short["input_ids"][n_prompt:]
    assert len(full["input_ids"]) > max_length  # the case really truncates


def test_truncation_inside_prompt_has_no_targets(tokenizer):
    example = build_example(tokenizer, "what is 2 + 3 ?", "5", max_length=4)
    assert len(example["input_ids"]) == len(example["labels"]) == 4
    assert example["labels"] == [IGNORE_INDEX] * 4


# --- collator ---------------------------------------------------------------------------------


def test_collator_pads_to_longest(tokenizer):
    a = build_example(tokenizer, "what is 2 + 3 ?", "5", max_length=256)
    b = build_example(tokenizer, "what is 2 + 3 ?", "the answer is 5 ok", max_length=256)
    batch = CausalLMCollator(pad_token_id=tokenizer.pad_token_id)([a, b])
    longest = len(b["input_ids"])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, longest)
    assert batch["input_ids"].dtype == torch.long
    n = len(a["input_ids"])
    assert batch["input_ids"][0, n:].tolist() == [tokenizer.pad_token_id] * (longest - n)
    assert batch["labels"][0, n:].tolist() == [IGNORE_INDEX] * (longest - n)
    assert batch["attention_mask"][0].tolist() == [1] * n + [0] * (longest - n)
    assert batch["labels"][1].tolist() == b["labels"]
    rounded = CausalLMCollator(pad_token_id=0, pad_to_multiple_of=8)([a, b])
    assert rounded["input_ids"].shape[1] % 8 == 0


# --- subsets from local files -----------------------------------------------------------------


def _write_jsonl(path, rows):
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_training_subset_is_seeded_filtered_and_masked(tmp_path, tokenizer):
    rows = [
        {
            "query": f"what is 2 + {i} ?",
            "response": "the answer is " + "5 " * (i % 7),
            "type": "GSM_Rephrased" if i % 4 else "MATH_AnsAug",
        }
        for i in range(60)
    ]
    path = _write_jsonl(tmp_path / "metamath.jsonl", rows)
    spec = get_spec("metamathqa")
    first = load_training_subset(
        spec, n=20, max_length=64, seed=1, tokenizer=tokenizer, data_files=str(path), chunk_size=16
    )
    again = load_training_subset("metamathqa", n=20, max_length=64, seed=1, tokenizer=tokenizer, data_files=str(path))
    other = load_training_subset(spec, n=20, max_length=64, seed=2, tokenizer=tokenizer, data_files=str(path))
    assert len(first) == 20
    assert first["input_ids"] == again["input_ids"]
    assert first["input_ids"] != other["input_ids"]
    for ids, labels in zip(first["input_ids"], first["labels"]):
        assert len(ids) == len(labels) <= 64 and ids[-1] == tokenizer.eos_token_id
        n_prompt = labels.count(IGNORE_INDEX)
        assert labels[:n_prompt] == [IGNORE_INDEX] * n_prompt and labels[n_prompt:] == ids[n_prompt:]
    # Only GSM rows qualify (45 of 60); asking for more returns all of them.
    everything = load_training_subset(spec, n=100, max_length=64, seed=1, tokenizer=tokenizer, data_files=str(path))
    assert len(everything) == 45


def test_training_subset_drops_overlong_rows(tmp_path, tokenizer):
    rows = [{"instruction": "cat sat", "output": "ok " * (3 if i % 2 else 200)} for i in range(10)]
    path = _write_jsonl(tmp_path / "wizard.jsonl", rows)
    subset = load_training_subset("wizardlm", n=10, max_length=80, seed=0, tokenizer=tokenizer, data_files=str(path))
    assert len(subset) == 5


def test_record_filters():
    code = get_spec("code_feedback").to_record
    kept = code({"query": "write f", "answer": "Sure:\n```python\ndef f(): return 1\n```\nMore text ```x```"})
    assert kept.response == "Sure:\n```python\ndef f(): return 1\n```"
    assert code({"query": "q", "answer": "no code here"}) is None
    multi = code({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "```a```"}]})
    assert (multi.instruction, multi.response) == ("q", "```a```")
    wizard = get_spec("wizardlm").to_record
    assert wizard({"instruction": "q", "output": "Sorry, I cannot"}) is None
    assert wizard({"instruction": "q", "output": "As an AI language model"}) is None
    commonsense = get_spec("commonsense170k").to_record
    record = commonsense({"instruction": "q", "input": "", "output": "the correct answer is true", "answer": "true"})
    assert record.input_text is None and record.response == "the correct answer is true"


# --- missing data -----------------------------------------------------------------------------


def test_missing_hub_dataset_gives_one_clear_error(monkeypatch, tokenizer):
    import datasets

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    with pytest.raises(DataUnavailableError, match=r"MetaMathQA \(meta-math/MetaMathQA\).*data_files="):
        load_training_subset("metamathqa", n=10, max_length=64, seed=0, tokenizer=tokenizer)
    with pytest.raises(DataUnavailableError, match=r"GSM8K \(openai/gsm8k\)"):
        load_gsm8k_test()
    spec = get_spec("wizardlm", hub_id="my-org/my-copy")
    with pytest.raises(DataUnavailableError, match="WizardLM.*my-org/my-copy"):
        load_training_subset(spec, n=1, max_length=64, seed=0, tokenizer=tokenizer)


def test_missing_local_file_names_the_dataset(tmp_path, tokenizer):
    with pytest.raises(DataUnavailableError, match="Commonsense170K.*not found"):
        load_training_subset(
            "commonsense170k",
            n=None,
            max_length=64,
            seed=0,
            tokenizer=tokenizer,
            data_files=str(tmp_path / "commonsense_170k.json"),
        )


def test_unknown_spec_name():
    with pytest.raises(ValueError, match="metamathqa"):
        get_spec("alpaca")


# --- evaluation sets --------------------------------------------------------------------------


def test_commonsense_test_set_from_llm_adapters_layout(tmp_path):
    records = [
        {
            "instruction": "is it ? Answer format: true/false",
            "input": "",
            "output": "the correct answer is true",
            "answer": "true",
        }
    ]
    folder = tmp_path / "dataset" / "ARC-Challenge"
    folder.mkdir(parents=True)
    (folder / "test.json").write_text(json.dumps(records), encoding="utf-8")
    assert load_commonsense_test("arc_c", data_dir=tmp_path / "dataset") == records
    with pytest.raises(DataUnavailableError, match="boolq.*LLM-Adapters"):
        load_commonsense_test("boolq", data_dir=tmp_path / "dataset")
    with pytest.raises(ValueError, match="valid"):
        load_commonsense_test("mmlu", data_dir=tmp_path / "dataset")
    assert causal_lm.commonsense_prompt(records[0]).endswith("Answer format: true/false\n\n### Response:\n")


def test_gsm8k_test_from_local_file(tmp_path):
    path = _write_jsonl(tmp_path / "test.jsonl", [{"question": "2 + 3 ?", "answer": "2 + 3 = 5\n#### 5"}])
    assert load_gsm8k_test(data_files=str(path)) == [{"question": "2 + 3 ?", "answer": "2 + 3 = 5\n#### 5"}]


def test_humaneval_prompt_embeds_problem():
    prompt = causal_lm.humaneval_prompt('def f(x):\n    """Return x."""\n')
    assert "```python\ndef f(x):" in prompt and prompt.endswith("### Response:\n")
