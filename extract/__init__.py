"""Decoding and feature extraction (ResNet-152 2D, SlowFast-R50 3D), and ``hero extract``'s loop
over video files (:mod:`extract.batch`). Imports only hero_data."""
