"""The HERO model, its pretraining tasks and trainer. Imports only hero_data."""
