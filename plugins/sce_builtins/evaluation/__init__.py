"""Evaluation of pretrained trunks: weighted kNN, feature extraction, linear and kNN models."""
