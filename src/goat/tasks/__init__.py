"""Task data: GLUE and the embedded sentiment default, vision datasets, causal-LM corpora."""
