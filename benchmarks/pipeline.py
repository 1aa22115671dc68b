"""Pipeline benchmark: one command, prints its figures, writes JSON.

    python benchmarks/pipeline.py [--rounds 3] [--out results/pipeline.json]

One `sluice server` (authentication off) and a SageMaker pipeline of four small steps on
the digits data, sent as JSON through boto3 and started `--rounds` times (no caching):
preprocess (a processing job: shuffle and split), train (a training job in script mode:
a logistic regression), evaluate (a processing job writing a property file), and a
condition on its accuracy that registers the model. Each script prints, as it ends, how
long its own process ran (interpreter start and imports included); a step's overhead is
its duration less that; the condition and the registration are all overhead. The jobs,
the server and boto3 share this machine's cores.

Bars: the pipeline completes in < 60 s; the overhead of every step < 2 s.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import numpy as np
from botocore.config import Config

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from gateway import Gateway, report_bars  # noqa: E402

ROLE = "arn:aws:iam::000000000000:role/pipeline"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
# The process's age on the clock its start time is kept in (ticks since boot): exact to a
# tick, where a wall-clock create time is off by up to a second (the kernel's boot time is
# whole seconds, and the wall clock has drifted since).
OWN_TIME = """
import os, time
with open("/proc/self/stat") as stat:
    ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
print(f"script_s={age:.3f}")
"""
PREPROCESS = """
import numpy as np

table = np.loadtxt("/opt/ml/processing/input/raw/digits.csv", delimiter=",")
np.random.default_rng(0).shuffle(table)
cut = int(len(table) * 0.7)
np.savetxt("/opt/ml/processing/train/train.csv", table[:cut], delimiter=",", fmt="%g")
np.savetxt("/opt/ml/processing/test/test.csv", table[cut:], delimiter=",", fmt="%g")
"""
TRAIN = """
import os
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

train = np.loadtxt(os.environ["SM_CHANNEL_TRAIN"] + "/train.csv", delimiter=",")
model = LogisticRegression(max_iter=3000).fit(train[:, :-1], train[:, -1])
joblib.dump(model, os.environ["SM_MODEL_DIR"] + "/model.joblib")
"""
EVALUATE = """
import json, tarfile, tempfile
import joblib
import numpy as np

folder = tempfile.mkdtemp()
with tarfile.open("/opt/ml/processing/model/model.tar.gz") as tar:
    tar.extractall(folder, filter="data")
model = joblib.load(folder + "/model.joblib")
test = np.loadtxt("/opt/ml/processing/test/test.csv", delimiter=",")
accuracy = float(model.score(test[:, :-1], test[:, -1]))
json.dump({"metrics": {"accuracy": {"value": accuracy}}},
          open("/opt/ml/processing/evaluation/evaluation.json", "w"))
"""


def processing(name: str, code: str, inputs: dict[str, Any], outputs: list[str]) -> dict[str, Any]:
    def s3_input(local: str, uri: Any) -> dict[str, Any]:
        path = f"/opt/ml/processing/{local}"
        return {"InputName": local.replace("/", "-"), "S3Input": {"S3Uri": uri, "LocalPath": path,
                "S3DataType": "S3Prefix", "S3InputMode": "File"}}  # fmt: skip

    return {
        "Name": name,
        "Type": "Processing",
        "Arguments": {
            "ProcessingResources": {
                "ClusterConfig": {
                    "InstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                    "VolumeSizeInGB": 5,
                }  # fmt: skip
            },
            "AppSpecification": {
                "ImageUri": IMAGE,
                "ContainerEntrypoint": ["python3", f"/opt/ml/processing/input/code/{code}"],
            },
            "RoleArn": ROLE,
            "ProcessingInputs": [
                s3_input("input/code", f"s3://bench/code/{code}"),
                *(s3_input(local, uri) for local, uri in inputs.items()),
            ],
            "ProcessingOutputConfig": {
                "Outputs": [
                    {
                        "OutputName": out,
                        "S3Output": {
                            "S3Uri": {
                                "Std:Join": {
                                    "On": "/",
                                    "Values": [
                                        "s3://bench/runs",
                                        {"Get": "Execution.PipelineExecutionId"},
                                        name,
                                        out,
                                    ],
                                }
                            },  # fmt: skip
                            "LocalPath": f"/opt/ml/processing/{out}",
                            "S3UploadMode": "EndOfJob",
                        },
                    }
                    for out in outputs
                ]
            },
        },
    }


def output(step: str, name: str) -> dict[str, str]:
    return {"Get": f"Steps.{step}.ProcessingOutputConfig.Outputs['{name}'].S3Output.S3Uri"}


def definition() -> dict[str, Any]:
    model = {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    evaluate = processing(
        "Evaluate",
        "evaluate.py",
        {"model": model, "test": output("Preprocess", "test")},
        ["evaluation"],
    )
    evaluate["PropertyFiles"] = [
        {"PropertyFileName": "Report", "OutputName": "evaluation", "FilePath": "evaluation.json"}
    ]
    return {
        "Version": "2020-12-01",
        "Parameters": [{"Name": "Threshold", "Type": "Float", "DefaultValue": 0.9}],
        "Steps": [
            processing(
                "Preprocess", "preprocess.py", {"input/raw": "s3://bench/raw"}, ["train", "test"]
            ),
            {
                "Name": "Train",
                "Type": "Training",
                "Arguments": {
                    "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
                    "HyperParameters": {
                        "sagemaker_program": '"train.py"',
                        "sagemaker_submit_directory": '"s3://bench/code/train"',
                    },  # fmt: skip
                    "InputDataConfig": [
                        {
                            "ChannelName": "train",
                            "DataSource": {
                                "S3DataSource": {
                                    "S3DataType": "S3Prefix",
                                    "S3Uri": output("Preprocess", "train"),
                                }
                            },
                        }
                    ],  # fmt: skip
                    "OutputDataConfig": {"S3OutputPath": "s3://bench/models"},
                    "ResourceConfig": {
                        "InstanceType": "ml.m5.large",
                        "InstanceCount": 1,
                        "VolumeSizeInGB": 5,
                    },  # fmt: skip
                    "StoppingCondition": {"MaxRuntimeInSeconds": 600},
                    "RoleArn": ROLE,
                },
            },
            evaluate,
            {
                "Name": "Check",
                "Type": "Condition",
                "Arguments": {
                    "Conditions": [
                        {
                            "Type": "GreaterThanOrEqualTo",
                            "LeftValue": {
                                "Std:JsonGet": {
                                    "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.Report"},
                                    "Path": "metrics.accuracy.value",
                                }
                            },
                            "RightValue": {"Get": "Parameters.Threshold"},
                        }
                    ],  # fmt: skip
                    "IfSteps": [
                        {
                            "Name": "Register",
                            "Type": "RegisterModel",
                            "Arguments": {
                                "ModelPackageGroupName": "digits",
                                "InferenceSpecification": {
                                    "Containers": [{"Image": IMAGE, "ModelDataUrl": model}],
                                    "SupportedContentTypes": ["application/json"],
                                    "SupportedResponseMIMETypes": ["application/json"],
                                },
                                "ModelApprovalStatus": "Approved",
                            },
                        }
                    ],
                    "ElseSteps": [
                        {"Name": "TooWeak", "Type": "Fail", "Arguments": {"ErrorMessage": "weak"}}
                    ],
                },
            },
        ],
    }


def prepare(home: Path) -> None:
    from sklearn.datasets import load_digits

    root = home / "s3" / "bench"
    for folder in ("raw", "code/train"):
        (root / folder).mkdir(parents=True)
    digits = load_digits()
    table = np.column_stack([digits.data, digits.target])
    np.savetxt(root / "raw" / "digits.csv", table, delimiter=",", fmt="%g")
    for name, body in (("preprocess.py", PREPROCESS), ("evaluate.py", EVALUATE)):
        (root / "code" / name).write_text(textwrap.dedent(body) + textwrap.dedent(OWN_TIME))
    (root / "code" / "train" / "train.py").write_text(
        textwrap.dedent(TRAIN) + textwrap.dedent(OWN_TIME)
    )


def run_once(sm: Any, api: httpx.Client) -> dict[str, Any]:
    started = time.perf_counter()
    arn = sm.start_pipeline_execution(PipelineName="bench")["PipelineExecutionArn"]
    while True:
        status = sm.describe_pipeline_execution(PipelineExecutionArn=arn)
        if status["PipelineExecutionStatus"] not in ("Executing", "Stopping"):
            break
        time.sleep(0.05)
    total = time.perf_counter() - started
    if status["PipelineExecutionStatus"] != "Succeeded":
        raise RuntimeError(f"the pipeline ended {status['PipelineExecutionStatus']}: {status}")
    steps = []
    for step in api.get(f"/executions/{arn.rsplit('/', 1)[1]}").json()["steps"]:
        seconds = _seconds(step)
        own = 0.0
        kind = {"Processing": "processing", "Training": "training"}.get(step["type"])
        if kind:
            lines = api.get(f"/jobs/{kind}/{step['job']}/log").json()["lines"]
            own = float(next(line.split("=")[1] for line in lines if line.startswith("script_s=")))
        steps.append(
            {"step": step["name"], "seconds": seconds, "script_s": own, "overhead_s": seconds - own}
        )
    return {"total_s": total, "steps": steps}


def _seconds(step: dict[str, Any]) -> float:
    from datetime import datetime

    start = datetime.fromisoformat(step["started_at"])
    end = datetime.fromisoformat(step["ended_at"])
    return (end - start).total_seconds()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "pipeline.json")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sluice-pipeline-bench-"))
    gateway = None
    try:
        home = work / "home"
        home.mkdir()
        prepare(home)
        gateway = Gateway(home, auth=False)
        sm = boto3.client(
            "sagemaker",
            endpoint_url=gateway.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(retries={"max_attempts": 1}),
        )
        sm.create_pipeline(PipelineName="bench", PipelineDefinition=json.dumps(definition()),
                           RoleArn=ROLE, ClientRequestToken="bench-" + "0" * 26)  # fmt: skip
        runs = []
        for round_ in range(args.rounds):
            run = run_once(sm, gateway.api)
            runs.append(run)
            line = ", ".join(
                f"{s['step']} {s['seconds']:.2f} s ({s['overhead_s']:+.2f})" for s in run["steps"]
            )
            print(f"round {round_ + 1}: {run['total_s']:.2f} s; {line}")
        total = statistics.median(r["total_s"] for r in runs)
        worst = max(s["overhead_s"] for r in runs for s in r["steps"])
        scripts = statistics.median(sum(s["script_s"] for s in r["steps"]) for r in runs)
        results = {"total_s": round(total, 3), "scripts_s": round(scripts, 3),
                   "worst_step_overhead_s": round(worst, 3)}  # fmt: skip
        per_step: dict[str, list[float]] = {}
        for r in runs:
            for s in r["steps"]:
                per_step.setdefault(s["step"], []).append(s["overhead_s"])
        for name, values in per_step.items():
            results[f"{name}_overhead_s"] = round(statistics.median(values), 3)
        bars = [
            ("four-step pipeline < 60 s", f"{total:.2f} s (median of {args.rounds})", total < 60),
            ("overhead per step < 2 s", f"worst {worst:.2f} s", worst < 2),
        ]
        report_bars(args.out, results, bars, runs=runs)
    finally:
        if gateway is not None:
            gateway.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
