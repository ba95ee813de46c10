"""Docstring fragments that several functions share, written once.

A function's docstring names a fragment as ``{field}``; ``@shared_doc(field=text)``
fills it in at import time. Fragments are indented as the lines they replace:
a multi-line fragment carries the indentation of its continuation lines.
"""


def shared_doc(**fragments):
    """Decorator: fill the ``{name}`` fields of the function's docstring."""
    def fill(function):
        if function.__doc__:  # None under python -OO
            function.__doc__ = function.__doc__.format(**fragments)
        return function
    return fill
