# Colab: set REPO_URL below, choose a GPU runtime, then Runtime > Run all. No GPU yet? Runtime >
# Change runtime type > Hardware accelerator: T4 GPU (any GPU will do) > Save. The other COLAB_*
# values are optional. Outside Colab (Jupyter, papermill, the tests) this cell does nothing.
import importlib.util
import os
import shutil
import subprocess
import sys

REPO_URL = "https://github.com/<user>/<repo>.git"  # the repository's clone URL
COLAB_PRESET = "course"  # course: 256 px, width 64 (GPU) | cpu: 128 px, width 8 | smoke: a check
COLAB_DATA = None  # None: the preset's ("download": official PH2 RAR, ~110 MB), or a PH2 path
COLAB_OUT = "runs/course"  # results folder; a rerun resumes the grid from what is there
COLAB_DRIVE = False  # True: results and download cache on Google Drive (they outlive the session)

if "google.colab" in sys.modules:
    if not os.path.isfile("seglib/__init__.py"):  # clone once, then work inside the clone
        if "<" in REPO_URL:
            raise ValueError("set REPO_URL in this cell to the repository's clone URL")
        repo = "/content/" + REPO_URL.rstrip("/").split("/")[-1].removesuffix(".git")
        if not os.path.isdir(repo):
            subprocess.run(["git", "clone", "--depth", "1", REPO_URL, repo], check=True)
        os.chdir(repo)
        sys.path.insert(0, repo)
    import torch  # Colab's own CUDA build: never reinstalled here

    if torch.cuda.is_available():
        cap = ".".join(map(str, torch.cuda.get_device_capability(0)))
        print(f"GPU: {torch.cuda.get_device_name(0)} (compute capability {cap})")
    elif COLAB_PRESET == "course":
        raise RuntimeError(
            "no GPU in this runtime: Runtime > Change runtime type > Hardware accelerator: "
            'T4 GPU > Save, then Runtime > Run all (or set COLAB_PRESET = "smoke")'
        )
    # Colab ships torch, torchvision, numpy, pillow, matplotlib, scipy, tqdm: install only what
    # is missing (in practice rarfile, which reads the PH2 RAR).
    wanted = {
        "rarfile": "rarfile>=4.1",
        "tqdm": "tqdm>=4.64",
        "numpy": "numpy>=1.24",
        "PIL": "pillow>=10",
        "matplotlib": "matplotlib>=3.7",
        "scipy": "scipy>=1.10",
    }
    missing = [req for mod, req in wanted.items() if importlib.util.find_spec(mod) is None]
    if missing:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", *missing], check=True)
    # rarfile extracts with an external tool; Colab's image has unrar. Install it if absent.
    if not any(shutil.which(tool) for tool in ("unrar", "unar", "bsdtar")):
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "unrar"], check=False)
        if not shutil.which("unrar"):
            print(
                'warning: no unrar: DATA "download" cannot extract the PH2 RAR; give a PH2 '
                "folder, ZIP or TAR path in COLAB_DATA instead"
            )
    if COLAB_DRIVE:
        from google.colab import drive

        drive.mount("/content/drive")
        COLAB_OUT = "/content/drive/MyDrive/seglib/" + COLAB_OUT
        os.environ["SEGLIB_CACHE"] = "/content/drive/MyDrive/seglib/cache"
    from seglib.experiment import PRESETS

    # The notebook's "env" cell reads these; they win over the parameters saved in the notebook.
    os.environ.update(
        {
            "SEGLIB_PRESET": COLAB_PRESET,
            "SEGLIB_DATA": COLAB_DATA or PRESETS[COLAB_PRESET].data,
            "SEGLIB_OUT": COLAB_OUT,
            "SEGLIB_DIAG": COLAB_OUT + "/diag",
            "SEGLIB_SEEDS": "0",
        }
    )
    print(f"preset {COLAB_PRESET}, data {os.environ['SEGLIB_DATA']!r}, results in {COLAB_OUT}")
