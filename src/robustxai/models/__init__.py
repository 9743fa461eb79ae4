"""Models: architectures, the normalising wrapper, checkpoints, and model sources."""
from robustxai.models.checkpoint import load_checkpoint, save_checkpoint
from robustxai.models.wrapper import ImageClassifier, build_classifier

__all__ = ["ImageClassifier", "build_classifier", "load_checkpoint", "save_checkpoint"]
