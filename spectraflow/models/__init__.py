"""Models: the registry, model cards and the models themselves.

``list_models()`` lists the cards; ``load_model(name, device=None)`` builds a model on CUDA when
present, else on the CPU. See :mod:`spectraflow.models.card` for what a card states.
"""

from spectraflow.models.card import ModelCard, load_card
from spectraflow.models.registry import get_card, list_models, load_model

__all__ = ["ModelCard", "get_card", "list_models", "load_card", "load_model"]
