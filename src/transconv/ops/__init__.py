"""Operators: reference, fast methods and the dispatcher that picks between them."""

from .dispatch import (METHODS, Method, MethodChoice, Problem, choose_method, conv, conv_transpose, register_method,
                       set_autotune)

__all__ = ["conv", "conv_transpose", "choose_method", "MethodChoice", "Method", "METHODS", "register_method", "Problem",
           "set_autotune"]
