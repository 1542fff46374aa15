"""seglib: skin-lesion segmentation on PH2 (SegNet, UNet, UNet2 x BCE, Dice, Focal, Correlation)."""

__version__ = "0.1.0"
