"""Evaluation harnesses for the causal-LM tasks.

* ``gsm8k``: final-number extraction and exact match (math, MetaMathQA → GSM8K).
* ``humaneval``: sandboxed pass@1 on the 164 HumanEval problems (code, Code-Feedback → HumanEval).
* ``mtbench``: two-turn answer files in FastChat's format (chat, WizardLM → MT-Bench).
* ``commonsense``: answer-label extraction and accuracy for the 8 LLM-Adapters sets.
* ``generation``: batched greedy generation with left padding, shared by the above.

Import the submodules directly; this package imports nothing on its own.
"""
