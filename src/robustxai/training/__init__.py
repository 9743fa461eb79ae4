"""Training: PGD attacks, dual batch norm, the vanilla / adversarial / AdvProp algorithms, the loop."""
