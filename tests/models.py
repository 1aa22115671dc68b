"""Small real models and artifacts for tests, built from scikit-learn's bundled data."""

from __future__ import annotations

import tarfile
import textwrap
from functools import cache
from pathlib import Path
from typing import Any

import joblib
import numpy as np


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return x, y


@cache
def digits_logreg() -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = digits()
    return LogisticRegression(max_iter=3000).fit(x, y)


@cache
def digits_tree() -> Any:
    from sklearn.tree import DecisionTreeClassifier

    x, y = digits()
    return DecisionTreeClassifier(random_state=0, max_depth=6).fit(x, y)


def write_sklearn(folder: Path, model: Any, name: str = "model.joblib") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, folder / name)
    return folder


def tarball(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(folder)), recursive=False)
    return target


def write_handler(folder: Path, source: str, with_model: bool = True) -> Path:
    """An artifact with code/inference.py (and the digits model unless told otherwise)."""
    if with_model:
        write_sklearn(folder, digits_logreg())
    code = folder / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "inference.py").write_text(textwrap.dedent(source))
    return folder


CRASHING = """
def predict_fn(data, model):
    if (data < 0).any():
        raise RuntimeError("negative pixel values are not digits")
    return model.predict(data)
"""

DYING = """
import os

def predict_fn(data, model):
    if (data < 0).any():
        os._exit(3)  # the worker process dies while holding the request
    return model.predict(data)
"""

SLOW = """
import time

def predict_fn(data, model):
    time.sleep(float(__import__("os").environ.get("SLOW_SECONDS", "0.01")))
    return model.predict(data)
"""

ECHO_VARIANT = """
import json, os

def model_fn(model_dir):
    return os.environ.get("VARIANT_TAG", "?")

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    return {"tag": model, "rows": len(data)}

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""

FAULTY = """
import json, os, signal, time

BROKEN = []
LEAKED = []

def model_fn(model_dir):
    return None

def input_fn(body, content_type):
    return json.loads(body)

def predict_fn(data, model):
    action = data.get("action") if isinstance(data, dict) else None
    if action == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    if action == "hang":
        time.sleep(3600)
    if action == "sleep":
        time.sleep(float(data["seconds"]))
    if action == "leak" and data.get("pid") == os.getpid():
        LEAKED.append(bytearray(data.get("mb", 64) << 20))  # kept: a leak
    if action == "break":  # from now on this worker fails every request, as a leak would
        BROKEN.append(True)
    elif BROKEN:
        raise MemoryError("this worker is broken")
    return {"pid": os.getpid()}

def output_fn(prediction, accept):
    return json.dumps(prediction), "application/json"
"""
"""A handler whose requests say how to fail: crash the worker, hang it, or break it."""
