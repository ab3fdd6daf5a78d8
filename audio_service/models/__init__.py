"""Model loading and the registry of model ids and aliases clients may name."""
