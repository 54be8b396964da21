"""depthlab: training and evaluation of monocular depth estimation networks."""

__version__ = "0.1.0"
