"""``tfray predict``: the trained model over a data set on Ray (Ray Data's ``map_batches`` on an actor pool).

``request`` checks what was asked before Ray starts; ``summary`` is the arithmetic and text of the end;
the run itself is the Ray seam's (``controller/ray/batch.py``), the sequence the API's
(``controller.api.predict``). docs/design.md §14.
"""
