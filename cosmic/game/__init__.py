"""The game domain: pure Python and numpy, no Twisted, no I/O."""
