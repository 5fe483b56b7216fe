"""A stock script in miniature (no TensorFlow, nothing of tfray): it reads TF_CONFIG, takes its steps,
and exits 0. Faults reach it from outside (timed: kill, hang)."""

import argparse
import json
import os
import time

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=60)
parser.add_argument("--interval", type=float, default=0.1)
args = parser.parse_args()
task = json.loads(os.environ["TF_CONFIG"])["task"]
for step in range(1, args.steps + 1):
    time.sleep(args.interval)
print(f"{task['type']}-{task['index']} took {args.steps} steps", flush=True)
