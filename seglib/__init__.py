"""seglib: skin-lesion segmentation on PH2 (SegNet, UNet, UNet2 x BCE, Dice, Focal, Correlation)."""

__version__ = "0.2.0"  # the one place of the version: pyproject.toml reads it (hatch)
