"""The paper's analyses, one ``python -m goat.studies.<name>`` command each (``--smoke``: embedded default).

=================  ==========================================================
module             paper
=================  ==========================================================
``ablation``       Table 5: expert init O/P/M/R/zero, with and without MoE scaling, single LoRA
``lr_sweep``       Table 6: learning rates for MoLoRA, HydraLoRA, GOAT
``segments``       Figure 1: single LoRA initialised from each SVD segment
``scaling_rank``   Figure 2: SVD-initialised LoRA at several s and r; loss and Lemma 2.2 gradient norm
``loss_curves``    Figure 4: training loss per method
``rank_sweep``     Figure 5: performance against total rank
``experts_sweep``  Figure 6: number of experts and activated experts at total rank 32
``routing``        Figure 7: expert load per layer and task, with and without the balance loss
=================  ==========================================================

Every run appends its rows to ``<results-dir>/<family>/results.{csv,jsonl}`` tagged with the
study's name (``goat.report --study <name>`` lists them); figures (PNG) and their numbers (CSV)
go to ``<results-dir>/studies/<name>/`` unless ``--out`` says otherwise.
"""
