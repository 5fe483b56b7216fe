"""Benchmarks that print ratios measured in one run (docs/design.md §10; results in BENCHMARKS.md).

``python -m bench`` runs the digits job three ways (this project's controller
on a local Ray, the same training launched by hand with hand-written
``TF_CONFIG``, and Ray Train's ``TensorflowTrainer``) and a parameter-server
variant (ours and by hand), and prints a table of figures and ratios.
Needs the ``bench`` extra (``pip install -e '.[bench]'``: Ray Train, psutil).
"""
