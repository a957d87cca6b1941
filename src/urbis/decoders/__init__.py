"""Pure payload decoders: bytes in, measurements out (acquisition layer).

Nothing here does I/O or imports any urbis module but `urbis.decoders.base`.
"""
