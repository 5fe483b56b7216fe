"""What a Kubernetes API server writes into an object it returns, told apart from what its author wrote.

``kubectl get KIND NAME -o yaml`` gives the object with the server's
bookkeeping (``uid``, ``resourceVersion``, ``managedFields``, the last applied
configuration, ``status``) and every default filled in: an operator's
defaulting, and the pod template's own (``dnsPolicy: ClusterFirst``,
``terminationMessagePath``, ``imagePullPolicy``...). None of it is something
its author asked for, so an importer drops it before listing what did not
carry over. The bookkeeping goes from every manifest (only a server writes
it); a value equal to a default goes only from a manifest a server returned,
since a hand-written file that spells a default out means it.

Pod defaults as ``k8s.io/kubernetes/pkg/apis/core/v1/defaults.go`` sets them
(``SetDefaults_PodSpec``, ``SetDefaults_Container``, ``SetDefaults_ContainerPort``).
"""

from __future__ import annotations

from typing import Any

# Set by the API server on every object; never written by its author.
SERVER_METADATA = ("uid", "resourceVersion", "creationTimestamp", "managedFields", "generation", "selfLink",
                   "deletionTimestamp", "deletionGracePeriodSeconds")
SERVER_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)  # kubectl apply's copy of the file
POD_DEFAULTS = {"dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                "securityContext": {}, "terminationGracePeriodSeconds": 30, "enableServiceLinks": True}
CONTAINER_DEFAULTS = {"terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                      "resources": {}}


def returned_by_server(manifest: Any) -> bool:
    """Whether the manifest is an object as the API server returned it (``kubectl get -o yaml``)."""
    metadata = manifest.get("metadata") if isinstance(manifest, dict) else None
    return isinstance(metadata, dict) and any(key in metadata for key in ("uid", "resourceVersion", "managedFields"))


def drop_server_metadata(manifest: dict) -> None:
    """Drop, in place, the server's bookkeeping: ``status``, and the metadata only the server writes
    (``namespace: default`` too when the server returned it: it is where an object without one goes)."""
    from_server = returned_by_server(manifest)
    manifest.pop("status", None)
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict):
        return
    for key in SERVER_METADATA:
        metadata.pop(key, None)
    if from_server and metadata.get("namespace") == "default":
        del metadata["namespace"]
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict):
        for key in SERVER_ANNOTATIONS:
            annotations.pop(key, None)


def drop_pod_defaults(pod: Any) -> None:
    """Drop, in place, what a pod spec's defaulting sets, where it is still the default: the pod's fields and
    each container's (init containers too), its ports' protocol TCP, its imagePullPolicy for its image."""
    if not isinstance(pod, dict):
        return
    _drop_equal(pod, POD_DEFAULTS)
    for key in ("containers", "initContainers"):
        for container in pod.get(key) if isinstance(pod.get(key), list) else ():
            if isinstance(container, dict):
                _drop_equal(container, {**CONTAINER_DEFAULTS, "imagePullPolicy": _pull_policy(container.get("image"))})
                for port in container.get("ports") if isinstance(container.get("ports"), list) else ():
                    if isinstance(port, dict):
                        _drop_equal(port, {"protocol": "TCP"})


def _pull_policy(image: Any) -> str:
    """The imagePullPolicy an image gets when none is written: Always for ``:latest`` or no tag, else
    IfNotPresent (a digest counts as a tag)."""
    if not isinstance(image, str):
        return "IfNotPresent"
    name = image.split("@", 1)[0]
    tagged = "@" in image or ":" in name.rsplit("/", 1)[-1]
    return "IfNotPresent" if tagged and not name.endswith(":latest") else "Always"


def _drop_equal(node: dict, defaults: dict) -> None:
    for key, default in defaults.items():
        if key in node and node[key] == default and type(node[key]) is type(default):
            del node[key]
