"""The book's methods, one module each: the method's class, what is specific to it, its settings per
profile and its ``ENTRY`` (``sslbook.runs.MethodEntry``); ``sslbook.registry`` finds them all.

Import what a chapter needs from the method's own module: ``from sslbook.methods.simclr import SimCLR``.
"""
