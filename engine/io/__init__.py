"""Vensim / XMILE import and export, and the SDXorg test-models conformance harness.

* :mod:`engine.io.pysd_import` reads ``.mdl`` / ``.xmile`` / ``.xml`` / ``.stmx`` through
  PySD's translators and turns PySD's abstract model into our model dict (the shape of a
  ``*.toml`` model file); :mod:`engine.io.vensim_reader` reads the file into PySD's abstract model
  after :mod:`engine.io.mdl_text` / :mod:`engine.io.xmile_text` rewrite what PySD's grammar lacks;
  :mod:`engine.io.vensim_names` makes identifiers; :mod:`engine.io.toml_writer` writes TOML.
* :mod:`engine.io.export_mdl` and :mod:`engine.io.export_xmile` write a model dict as
  Vensim ``.mdl`` and XMILE.
* :mod:`engine.io.conformance` runs an SDXorg test-models tree against its canonical outputs.
* :mod:`engine.io.cli_commands` adds ``convert``, ``export`` and ``conformance`` to ``lxsd``.
"""

IMPORT_SUFFIXES = (".mdl", ".xmile", ".xml", ".stmx")

__all__ = ["IMPORT_SUFFIXES"]
