"""Evaluation: generating answers for every task on a checkpoint (evaluate) and scoring them by
each benchmark's metric (scoring)."""
