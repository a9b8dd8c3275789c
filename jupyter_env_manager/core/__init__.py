"""The core: specs, stores, builds, kernels, sharing. No tornado, jupyter_server or IPython here
(a test enforces it): the doors (``server``, ``cli``) translate their world into these calls."""
