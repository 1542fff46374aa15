"""Datasets: PH2 and folders of image/mask pairs (load, split, cache), download and safe
extraction, synthetic data, and the one image reader, mask binariser and outline drawer
(:mod:`seglib.data.imageio`)."""

from seglib.data.fetch import PH2_URL, fetch_ph2
from seglib.data.ph2 import PH2Data, load_dataset, load_ph2, resolve_data, split_indices
from seglib.data.synth import make_synthetic_ph2
from seglib.errors import PH2Error

__all__ = [
    "PH2_URL",
    "PH2Data",
    "PH2Error",
    "fetch_ph2",
    "load_dataset",
    "load_ph2",
    "make_synthetic_ph2",
    "resolve_data",
    "split_indices",
]
