"""Subtitle parsing, cleaning, cutting to clips, alignment, tokenizing. Imports only hero_data."""
