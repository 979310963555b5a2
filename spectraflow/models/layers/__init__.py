"""Building blocks shared by the learned architectures (plain torch; no timm/torchvision)."""
