"""robustxai: how explainable are robust CNNs."""
