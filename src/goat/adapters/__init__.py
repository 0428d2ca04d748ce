"""The adapter library: GOAT and its baselines on any PyTorch model, usable by any trainer.

It imports nothing of the application (``goat.train``, ``goat.tasks``, ...). Its modules, along PEFT's lines:

==================  =====================================================================
``config``          :class:`GoatConfig`: every adapter setting, validated
``layers``          the LoRA-MoE layer: experts, router, W_res path (eq. 1-3, 13-19)
``init``            the experts' SVD-segment initialisation and scaling (eq. 13-19, Thm 3.5)
``svd_cache``       the base weights' SVDs, cached on disk
``single``          the single-adapter baselines' own part (SVD priors, KaSA's loss)
``peft_layers``     the single-adapter baselines on peft's layers (the one module importing peft)
``routing``         the balance loss (App. B) and the experts' load
``aux_loss``        the balance loss added to ``outputs.loss`` (any trainer)
``injection``       which layers get adapters, injection, removal, trainable parameters
``model``           :class:`GoatModel` (the wrapper) and ``get_goat_model``/``load_goat_model``
``state``           an adapter's tensors in and out of a live model, and the checks of a load
``record``, ``io``  the adapter folder on disk (stock PEFT or GOAT's format), checksum, fingerprint
``card``            the model card and the Hub upload
``quantization``    4-bit/8-bit bases (QLoRA)
``reference``       the frozen reference model for TRL's DPO
==================  =====================================================================
"""
