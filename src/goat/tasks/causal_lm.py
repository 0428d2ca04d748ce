"""Data and prompts for the causal-LM tasks: math, code, chat (paper Table 2) and commonsense (Table 3).

* Prompts use the Alpaca template (a no-input and a with-input variant).
* ``build_example`` tokenises one (prompt, response) pair with the loss on response tokens only:
  labels are -100 on every prompt token and equal ``input_ids`` on the response and its EOS.
* ``DATASETS`` holds the training-set specs (MetaMathQA → GSM8K, Code-Feedback → HumanEval,
  WizardLM → MT-Bench, Commonsense170K → the 8 commonsense sets); ``load_training_subset`` turns a
  spec into a tokenised, seeded subset. Every hub id is a field of the spec and can be replaced,
  and every loader accepts local files instead (``data_files``), for machines without network.
* ``CausalLMCollator`` pads a batch to its longest example (``labels`` with -100).

Departures from the authors' code, on purpose: the prompt and the response are tokenised
separately (the prompt/response boundary is exact and the template has no literal indentation),
the subsets are a seeded shuffle rather than the first qualifying rows, and padding happens per
batch instead of to ``max_length``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple, Optional, Sequence, Union

import torch

from goat.tasks.commonsense_sets import canonical_dataset_name
from goat.tasks.errors import DataUnavailableError

logger = logging.getLogger(__name__)

IGNORE_INDEX = -100

PROMPT_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)
PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)

PathLike = Union[str, Path]
DataFiles = Union[PathLike, Sequence[PathLike], Mapping[str, Any]]


# ---------------------------------------------------------------------------------------------
# Prompts
# ---------------------------------------------------------------------------------------------


def format_prompt(instruction: str, input_text: Optional[str] = None) -> str:
    """The Alpaca prompt for ``instruction``; the with-input variant when ``input_text`` is non-empty."""
    if input_text and input_text.strip():
        return PROMPT_WITH_INPUT.format(instruction=instruction, input=input_text)
    return PROMPT_NO_INPUT.format(instruction=instruction)


def format_conversation(turns: Sequence[str], answers: Sequence[str]) -> str:
    """A multi-turn Alpaca prompt: earlier (instruction, response) pairs, then the last instruction.

    ``answers`` holds one answer per earlier turn (``len(answers) == len(turns) - 1``); the prompt
    ends with "### Response:" and a newline, ready for the model to answer the last turn.
    """
    if len(answers) != len(turns) - 1:
        raise ValueError(f"need {len(turns) - 1} answers for {len(turns)} turns, got {len(answers)}")
    prompt = format_prompt(turns[0])
    for answer, turn in zip(answers, turns[1:]):
        prompt += f"{answer.strip()}\n\n### Instruction:\n{turn}\n\n### Response:\n"
    return prompt


def gsm8k_prompt(question: str) -> str:
    """Evaluation prompt for a GSM8K question (same template as MetaMathQA training)."""
    return format_prompt(question)


def humaneval_prompt(problem_prompt: str) -> str:
    """Evaluation prompt for a HumanEval problem: ask for the whole function in a python block."""
    instruction = (
        "Complete the following Python function. Reply with the complete function definition "
        "in one python code block, using only the standard library and 4-space indentation.\n\n"
        f"```python\n{problem_prompt.rstrip()}\n```"
    )
    return format_prompt(instruction)


def commonsense_prompt(record: Mapping[str, Any]) -> str:
    """Evaluation prompt for an LLM-Adapters commonsense record (``instruction`` [+ ``input``])."""
    return format_prompt(record["instruction"], record.get("input") or None)


# ---------------------------------------------------------------------------------------------
# Tokenisation with prompt masking
# ---------------------------------------------------------------------------------------------


def _eos_id(tokenizer: Any) -> int:
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer has no eos token; the response needs one appended")
    return int(tokenizer.eos_token_id)


def _prompt_ids(tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """Prompt token ids (with BOS if the tokenizer adds one), minus an EOS the tokenizer appended."""
    ids = list(ids)
    if len(ids) > 1 and ids[-1] == tokenizer.eos_token_id and ids[-1] != tokenizer.bos_token_id:
        ids = ids[:-1]
    return ids


def assemble_example(
    prompt_ids: Sequence[int], response_ids: Sequence[int], eos_id: int, max_length: int
) -> dict[str, list[int]]:
    """Concatenate prompt + response + EOS, mask the prompt in ``labels`` and cut to ``max_length``.

    Truncation removes tokens from the end (first the EOS, then the response, then the prompt), so
    ``input_ids``, ``attention_mask`` and ``labels`` always have the same length.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length}")
    target = list(response_ids) + [eos_id]
    input_ids = (list(prompt_ids) + target)[:max_length]
    labels = ([IGNORE_INDEX] * len(prompt_ids) + target)[:max_length]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels}


def build_example(
    tokenizer: Any,
    instruction: str,
    response: str,
    max_length: int,
    *,
    input_text: Optional[str] = None,
) -> dict[str, list[int]]:
    """Tokenise one instruction/response pair for training with the loss on the response only.

    The prompt is ``format_prompt(instruction, input_text)`` tokenised with special tokens (BOS);
    the response is tokenised without special tokens and gets the tokenizer's EOS appended.
    Returns ``input_ids``, ``attention_mask`` and ``labels`` (-100 on every prompt position) of
    equal length, at most ``max_length`` (see ``assemble_example`` for truncation).
    """
    prompt = tokenizer(format_prompt(instruction, input_text), add_special_tokens=True)["input_ids"]
    answer = tokenizer(response, add_special_tokens=False)["input_ids"]
    return assemble_example(_prompt_ids(tokenizer, prompt), answer, _eos_id(tokenizer), max_length)


# ---------------------------------------------------------------------------------------------
# Dataset specs
# ---------------------------------------------------------------------------------------------


class InstructionRecord(NamedTuple):
    """One training pair; ``input_text`` selects the with-input template when non-empty."""

    instruction: str
    response: str
    input_text: Optional[str] = None


RecordFn = Callable[[Mapping[str, Any]], Optional[InstructionRecord]]


@dataclass(frozen=True)
class CausalLMDataSpec:
    """Where a training set lives and how one raw row becomes an ``InstructionRecord``.

    ``to_record`` returns ``None`` for rows the authors' selection drops (their filters are kept);
    ``default_n``/``default_max_length`` are the paper's subset size and the authors' length cap.
    """

    name: str
    hub_id: Optional[str]
    to_record: RecordFn
    eval_benchmark: str
    default_n: Optional[int]
    default_max_length: int
    hub_config: Optional[str] = None
    split: str = "train"
    local_hint: str = ""


def _metamath_record(row: Mapping[str, Any]) -> Optional[InstructionRecord]:
    """MetaMathQA: GSM-derived rows only (``type`` contains "GSM"), query → full response."""
    if "GSM" not in str(row.get("type", "")):
        return None
    return InstructionRecord(row["query"], row["response"])


def _first_code_block(answer: str) -> Optional[str]:
    """``answer`` up to and including its first closed ``` block; ``None`` without one."""
    opening = answer.find("```")
    if opening == -1:
        return None
    closing = answer.find("```", opening + 3)
    if closing == -1:
        return None
    return answer[: closing + 3]


def _code_feedback_record(row: Mapping[str, Any]) -> Optional[InstructionRecord]:
    """Code-Feedback: answers with a fenced block, cut after that block.

    Accepts the single-turn ``query``/``answer`` rows of CodeFeedback-Filtered-Instruction and the
    multi-turn ``messages`` rows of Code-Feedback (first user turn, first assistant reply).
    """
    if "messages" in row:
        messages = row["messages"] or []
        user = next((m["content"] for m in messages if m.get("role") == "user"), None)
        reply = next((m["content"] for m in messages if m.get("role") == "assistant"), None)
        if user is None or reply is None:
            return None
        query, answer = user, reply
    else:
        query, answer = row["query"], row["answer"]
    truncated = _first_code_block(answer)
    return None if truncated is None else InstructionRecord(query, truncated)


_REFUSALS = ("sorry", "as an ai")


def _wizardlm_record(row: Mapping[str, Any]) -> Optional[InstructionRecord]:
    """WizardLM evol-instruct: drop refusals ("sorry", "as an ai", any case)."""
    output = row["output"]
    if any(marker in output.lower() for marker in _REFUSALS):
        return None
    return InstructionRecord(row["instruction"], output)


def _commonsense_record(row: Mapping[str, Any]) -> Optional[InstructionRecord]:
    """LLM-Adapters Commonsense170K: instruction (+ input) → output ("the correct answer is …")."""
    return InstructionRecord(row["instruction"], row["output"], row.get("input") or None)


DATASETS: dict[str, CausalLMDataSpec] = {
    "metamathqa": CausalLMDataSpec(
        name="MetaMathQA",
        hub_id="meta-math/MetaMathQA",
        to_record=_metamath_record,
        eval_benchmark="gsm8k",
        default_n=100_000,
        default_max_length=512,
        local_hint="MetaMathQA-395K.json from the meta-math/MetaMathQA dataset repository",
    ),
    "code_feedback": CausalLMDataSpec(
        # The authors' code loads the filtered single-turn release; "m-a-p/Code-Feedback"
        # (multi-turn ``messages``) also works through ``_code_feedback_record``.
        name="Code-Feedback",
        hub_id="m-a-p/CodeFeedback-Filtered-Instruction",
        to_record=_code_feedback_record,
        eval_benchmark="humaneval",
        default_n=100_000,
        default_max_length=1024,
        local_hint="the jsonl file of m-a-p/CodeFeedback-Filtered-Instruction (or m-a-p/Code-Feedback)",
    ),
    "wizardlm": CausalLMDataSpec(
        # The authors' code loads silk-road/Wizard-LM-Chinese-instruct-evol (same fields).
        name="WizardLM",
        hub_id="WizardLMTeam/WizardLM_evol_instruct_70k",
        to_record=_wizardlm_record,
        eval_benchmark="mtbench",
        default_n=52_000,
        default_max_length=1024,
        local_hint="alpaca_evol_instruct_70k.json from WizardLMTeam/WizardLM_evol_instruct_70k",
    ),
    "commonsense170k": CausalLMDataSpec(
        name="Commonsense170K",
        hub_id="zwhe99/commonsense_170k",
        to_record=_commonsense_record,
        eval_benchmark="commonsense",
        default_n=None,
        default_max_length=256,
        local_hint="ft-training_set/commonsense_170k.json from the AGI-Edgerunners/LLM-Adapters repository",
    ),
}


def get_spec(name: str, **overrides: Any) -> CausalLMDataSpec:
    """The spec registered as ``name`` with fields replaced by ``overrides`` (e.g. ``hub_id=...``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown causal-LM dataset {name!r}; valid: {', '.join(DATASETS)}")
    return replace(DATASETS[name], **overrides)


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def _file_builder(data_files: DataFiles) -> str:
    first = data_files
    if isinstance(first, Mapping):
        first = next(iter(first.values()))
    if isinstance(first, (list, tuple)):
        first = first[0]
    suffixes = Path(str(first)).suffixes
    if ".parquet" in suffixes:
        return "parquet"
    if ".csv" in suffixes:
        return "csv"
    return "json"


def _check_local(data_files: DataFiles, name: str) -> None:
    paths: list[Any] = []
    values = data_files.values() if isinstance(data_files, Mapping) else [data_files]
    for value in values:
        paths.extend(value if isinstance(value, (list, tuple)) else [value])
    missing = [str(p) for p in paths if "*" not in str(p) and not Path(str(p)).exists()]
    if missing:
        raise DataUnavailableError(f"{name}: local data file(s) not found: {', '.join(missing)}")


def load_raw_dataset(
    name: str,
    *,
    hub_id: Optional[str],
    hub_config: Optional[str] = None,
    split: str = "train",
    data_files: Optional[DataFiles] = None,
    local_hint: str = "",
) -> Any:
    """Load a ``datasets.Dataset`` from local ``data_files`` (json/jsonl/parquet/csv) or the hub.

    Any failure (no network, unknown id, missing file) becomes one ``DataUnavailableError``
    naming the dataset and how to provide it locally.
    """
    import datasets  # heavy import, only when loading

    how = (
        f"Download {local_hint or 'its data file'} on a machine with network access and pass it "
        f"as data_files=<path> (json, jsonl or parquet), or populate the Hugging Face cache and "
        f"set HF_HUB_OFFLINE=1."
    )
    if data_files is not None:
        _check_local(data_files, name)
        try:
            loaded = datasets.load_dataset(_file_builder(data_files), data_files=data_files)
        except Exception as err:  # noqa: BLE001 - re-raised with context
            raise DataUnavailableError(f"{name}: could not read {data_files}: {err}") from err
        return loaded[split] if split in loaded else loaded[next(iter(loaded))]
    if hub_id is None:
        raise DataUnavailableError(f"{name} has no hub id configured. {how}")
    try:
        return datasets.load_dataset(hub_id, hub_config, split=split)
    except Exception as err:  # noqa: BLE001 - offline/unknown-id errors vary by version
        raise DataUnavailableError(
            f"{name} ({hub_id}) could not be loaded: {type(err).__name__}: {err}. {how}"
        ) from err


def _encode_records(
    tokenizer: Any, records: Sequence[InstructionRecord], max_length: int
) -> list[dict[str, list[int]]]:
    """Tokenise ``records`` in one batch call; drop those longer than ``max_length`` untruncated."""
    prompts = [format_prompt(r.instruction, r.input_text) for r in records]
    prompt_ids = tokenizer(prompts, add_special_tokens=True)["input_ids"]
    response_ids = tokenizer([r.response for r in records], add_special_tokens=False)["input_ids"]
    eos = _eos_id(tokenizer)
    examples = []
    for prompt, response in zip(prompt_ids, response_ids):
        prompt = _prompt_ids(tokenizer, prompt)
        if len(prompt) + len(response) + 1 <= max_length:
            examples.append(assemble_example(prompt, response, eos, max_length))
    return examples


def load_training_subset(
    spec: Union[CausalLMDataSpec, str],
    *,
    n: Optional[int],
    max_length: int,
    seed: int,
    tokenizer: Any,
    data_files: Optional[DataFiles] = None,
    chunk_size: int = 2_000,
) -> Any:
    """A tokenised training subset: shuffle with ``seed``, keep qualifying rows, take the first ``n``.

    A row qualifies if the spec's ``to_record`` keeps it and its full tokenised length (prompt +
    response + EOS) is at most ``max_length``; over-long rows are dropped, not truncated.
    ``n=None`` keeps every qualifying row. Returns a ``datasets.Dataset`` with ``input_ids``,
    ``attention_mask`` and ``labels`` (see ``build_example``); fewer than ``n`` rows are logged as
    a warning.

    Note: the authors' code did not shuffle (its shuffle result was discarded); their subsets are
    the *first* qualifying rows in file order. Shuffling with a seed is our choice.
    """
    import datasets

    spec = get_spec(spec) if isinstance(spec, str) else spec
    raw = load_raw_dataset(
        spec.name,
        hub_id=spec.hub_id,
        hub_config=spec.hub_config,
        split=spec.split,
        data_files=data_files,
        local_hint=spec.local_hint,
    )
    raw = raw.shuffle(seed=seed)
    target = len(raw) if n is None else n
    examples: list[dict[str, list[int]]] = []
    for batch in raw.iter(batch_size=chunk_size):
        rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
        records = [r for r in (spec.to_record(row) for row in rows) if r is not None]
        examples.extend(_encode_records(tokenizer, records, max_length) if records else [])
        if len(examples) >= target:
            break
    examples = examples[:target]
    if n is not None and len(examples) < n:
        logger.warning("%s: only %d qualifying rows (asked for %d)", spec.name, len(examples), n)
    keys = ("input_ids", "attention_mask", "labels")
    columns = {key: [example[key] for example in examples] for key in keys}
    return datasets.Dataset.from_dict(columns)


# ---------------------------------------------------------------------------------------------
# Evaluation sets
# ---------------------------------------------------------------------------------------------


def load_gsm8k_test(
    *,
    hub_id: str = "openai/gsm8k",
    hub_config: str = "main",
    split: str = "test",
    data_files: Optional[DataFiles] = None,
) -> list[dict[str, str]]:
    """GSM8K test questions (1,319): ``[{"question", "answer"}]``, answers ending in "#### N"."""
    data = load_raw_dataset(
        "GSM8K",
        hub_id=hub_id,
        hub_config=hub_config,
        split=split,
        data_files=data_files,
        local_hint="main/test-*.parquet (or test.jsonl) of openai/gsm8k",
    )
    return [{"question": row["question"], "answer": row["answer"]} for row in data]


def load_commonsense_test(
    dataset: str,
    *,
    data_dir: Optional[PathLike] = None,
    hub_id: Optional[str] = None,
    split: str = "test",
) -> list[dict[str, Any]]:
    """One of the 8 commonsense test sets as LLM-Adapters records (``instruction``, ``answer``, …).

    Reads ``<data_dir>/<name>/test.json`` (LLM-Adapters ``dataset/`` layout, with the canonical
    folder names such as ``ARC-Challenge``) or, without ``data_dir``, the hub dataset ``hub_id``
    with the same fields. Aliases such as ``arc_c`` are accepted.
    """
    name = canonical_dataset_name(dataset)
    hint = f"dataset/{name}/test.json from the AGI-Edgerunners/LLM-Adapters repository (pass data_dir=<dataset folder>)"
    if data_dir is not None:
        path = Path(data_dir) / name / "test.json"
        if not path.exists():
            raise DataUnavailableError(f"{name}: {path} not found. Download {hint}.")
        return list(json.loads(path.read_text(encoding="utf-8")))
    data = load_raw_dataset(name, hub_id=hub_id, split=split, local_hint=hint)
    return [dict(row) for row in data]


# ---------------------------------------------------------------------------------------------
# Collation
# ---------------------------------------------------------------------------------------------


@dataclass
class CausalLMCollator:
    """Right-pad ``input_ids`` (with ``pad_token_id``), ``attention_mask`` (0) and ``labels`` (-100).

    Pads to the longest example in the batch, rounded up to ``pad_to_multiple_of`` when set, and
    returns ``torch.long`` tensors.
    """

    pad_token_id: int
    label_pad_id: int = IGNORE_INDEX
    pad_to_multiple_of: Optional[int] = None

    def __call__(self, features: Sequence[Mapping[str, Sequence[int]]]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            longest = math.ceil(longest / self.pad_to_multiple_of) * self.pad_to_multiple_of
        pads = {"input_ids": self.pad_token_id, "attention_mask": 0, "labels": self.label_pad_id}
        batch = {}
        for key, pad in pads.items():
            rows = [list(f[key]) if key in f else self._default(key, f) for f in features]
            batch[key] = torch.tensor([row + [pad] * (longest - len(row)) for row in rows], dtype=torch.long)
        return batch

    @staticmethod
    def _default(key: str, feature: Mapping[str, Sequence[int]]) -> list[int]:
        if key == "attention_mask":
            return [1] * len(feature["input_ids"])
        raise KeyError(f"every feature needs {key!r}")
