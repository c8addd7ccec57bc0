"""Helpers for our tools (``runner``); fixes to other libraries are in
:mod:`m2f_mm.patches`."""
