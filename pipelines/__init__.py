"""The hero command line and the stages that compose every other package. Nothing imports it."""
