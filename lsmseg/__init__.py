"""lsmseg: Latent Space Mapping segmentation toolkit (MONAI, PyTorch, Ignite)."""

__version__ = "0.1.0"
