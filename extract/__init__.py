"""Decoding and feature extraction (ResNet-152 2D, SlowFast-R50 3D). Imports only hero_data."""
