"""Pictures: frames as pure data (:mod:`.frames`), renderers with lazy matplotlib/Pillow (:mod:`.render`),
and the self-contained explorer page (:mod:`.explorer`)."""

from .frames import Animation, Canvas, Frame, accumulate, frames, make_spec

__all__ = ["Animation", "Canvas", "Frame", "accumulate", "frames", "make_spec"]
