"""Interoperation with the original HERO code: its LMDB databases (``lmdb_codec``: layout and
values; ``lmdb_export``; ``lmdb_import``) and its feature extractor's ``.npz`` folders
(``import_npz``). docs/hero-compat.md describes both."""
