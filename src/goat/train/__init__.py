"""Training framework shared by every task family: CLI, GoatTrainer, results files."""
