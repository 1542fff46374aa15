"""Speed measurements that ship with seglib: ``python -m seglib bench``."""
