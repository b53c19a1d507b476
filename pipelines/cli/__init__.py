"""The ``hero`` command line: the group in :mod:`pipelines.cli.main`, one module per command
(or command group), the shared options in :mod:`pipelines.cli.options` and the one error policy
in :mod:`pipelines.cli.errors`. The only package of the toolkit that imports click."""
