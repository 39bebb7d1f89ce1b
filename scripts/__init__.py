"""Developer entry points (`make run` → `python -m scripts.run_local`)."""
