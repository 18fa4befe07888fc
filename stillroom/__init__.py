"""stillroom: turn a team's own documents into a curated fine-tuning dataset and a trained adapter."""

__version__ = "0.1.0"
