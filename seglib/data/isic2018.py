"""The ISIC 2018 Task 1 training set (lesion boundary segmentation): download, check, extract.

Codella et al., "Skin Lesion Analysis Toward Melanoma Detection 2018: A Challenge Hosted by the
International Skin Imaging Collaboration (ISIC)", arXiv:1902.03368, 2019; images from HAM10000
(Tschandl et al., Sci. Data 5:180161, 2018). Licence CC0 1.0. Two ZIP archives from the
challenge's data page (https://challenge.isic-archive.com/data/#2018): the training input
(about 10 GB of JPEGs, mostly 4:3) and the ground truth (``ISIC_nnnnnnn_segmentation.png``,
0/255). Extracted they form the two-folder ISIC layout that ``seglib.data.folder`` reads.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from seglib.data import folder
from seglib.data.fetch import download, extract_archive
from seglib.errors import PH2Error

BASE = "https://isic-challenge-data.s3.amazonaws.com/2018/"
INPUT_URL = BASE + "ISIC2018_Task1-2_Training_Input.zip"
TRUTH_URL = BASE + "ISIC2018_Task1_Training_GroundTruth.zip"
"""The official archives; override with env ``SEGLIB_ISIC2018_INPUT_URL`` / ``..._TRUTH_URL``."""
PAIRS = 2594
"""Image/mask pairs in the official training set (a complete download has this many)."""


def urls() -> tuple[str, str]:
    """(input, ground truth) archive addresses: the environment's, else the official ones."""
    env = os.environ.get
    return env("SEGLIB_ISIC2018_INPUT_URL", INPUT_URL), env("SEGLIB_ISIC2018_TRUTH_URL", TRUTH_URL)


def _extracted(dest: Path, pairs: int) -> bool:
    done = dest / ".complete"
    return done.is_file() and done.read_text().strip() == str(pairs)


def fetch_isic2018(
    dest: Path, *, pairs: int | None = None, retries: int = 2, progress: bool | None = None
) -> Path:
    """Download (resuming, with progress), check and extract the ISIC 2018 Task 1 training
    input and ground truth into ``dest``; return ``dest``, a folder ``--data`` reads.

    Idempotent: a finished ``dest`` (marker ``.complete``) makes no request; downloaded archives
    are kept in ``dest`` and reused. Each archive is extracted into a temporary folder, refusing
    unsafe members (:func:`seglib.data.fetch.extract_archive`), and moved into place only when
    both are extracted and every image has its mask; ``pairs`` (default :data:`PAIRS`) is the
    number of pairs a complete download holds.

    Raises:
        PH2Error naming the archive or the address: HTTP error, interrupted download (call again
        to resume), corrupt archive, or a download that does not hold the expected pairs.
    """
    dest = Path(dest).expanduser()
    want = PAIRS if pairs is None else pairs
    if _extracted(dest, want):
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    archives = [
        download(u, dest / Path(u.split("?")[0]).name, retries=retries, progress=progress)
        for u in urls()
    ]
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        for archive in archives:
            try:
                extract_archive(archive, tmp)
            except PH2Error as e:
                raise PH2Error(f"{e}; delete {archive} to download it again") from e
        try:
            found = folder.find_pairs(tmp)
        except PH2Error as e:
            raise PH2Error(f"{dest}: the downloaded archives do not pair up ({e})") from e
        if len(found) != want:
            raise PH2Error(
                f"{dest}: the archives hold {len(found)} image/mask pairs, expected {want}; "
                f"delete {archives[0].name} and {archives[1].name} there to download them again"
            )
        for entry in sorted(tmp.iterdir()):
            target = dest / entry.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            os.replace(entry, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    (dest / ".complete").write_text(f"{want}\n")
    return dest
