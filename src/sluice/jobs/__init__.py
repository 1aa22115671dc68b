"""Processing and training jobs run on this machine, with no container engine.

A job's folder holds its `/opt/ml` tree (`ml/`) and its log (`output.log`); the program
runs through `sandbox`, which puts that tree at `/opt/ml`. `processing` and `training`
turn a SageMaker request into the program's arguments, environment and inputs, and its
outputs into what the request asked for; `launch` runs the program.
"""
