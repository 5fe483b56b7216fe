"""Vendor the v1 OpenAPI schema of a KubeRay CRD, for tests/unit/test_kuberay.py (see README.md here).

    python cluster_configs/kuberay/crd/vendor_crd.py KUBERAY_CHECKOUT v1.7.0 rayclusters rayjobs

reads ray-operator/config/crd/bases/ray.io_<plural>.yaml from a KubeRay checkout at that tag and writes
ray.io_<plural>.v1.json next to this file: the schema exactly as the CRD has it, with where it came from.
It runs by hand when KubeRay is upgraded, never at test time.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
SOURCE = "https://github.com/ray-project/kuberay/blob/{tag}/ray-operator/config/crd/bases/ray.io_{plural}.yaml"


def main(checkout: str, tag: str, *plurals: str) -> None:
    for plural in plurals:
        path = f"ray-operator/config/crd/bases/ray.io_{plural}.yaml"
        raw = subprocess.run(["git", "-C", checkout, "show", f"{tag}:{path}"], check=True, capture_output=True).stdout
        crd = yaml.safe_load(raw)
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
        out = {"kuberay_version": tag, "source": SOURCE.format(tag=tag, plural=plural),
               "crd_sha256": hashlib.sha256(raw).hexdigest(), "kind": crd["spec"]["names"]["kind"],
               "openAPIV3Schema": version["schema"]["openAPIV3Schema"]}
        (HERE / f"ray.io_{plural}.v1.json").write_text(json.dumps(out, separators=(",", ":"), sort_keys=True) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:])
