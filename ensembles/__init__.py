"""Ensembles of search trials, built from their saved validation predictions and weights.

This package never imports Ray or Optuna.
"""
