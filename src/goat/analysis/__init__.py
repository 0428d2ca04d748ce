"""Cost analyses of the adapter methods (paper App. F): ``params`` counts trainable parameters."""
