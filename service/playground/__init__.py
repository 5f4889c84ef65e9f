"""The optimizer playground: ``POST /v1/playground`` runs optimizers and schedules from
the catalog on classic 2-D test functions, with the training engine's own builders.

``functions`` the surfaces, ``schemas`` the request and response, ``run`` the loop
(torch, imported on the first request), ``plot`` the contour picture, ``router`` the
route. Importing this package imports neither torch nor matplotlib.
"""
