"""Evaluation of trained models: accuracy, OOD and robust accuracy, confidence, calibration, cost."""
