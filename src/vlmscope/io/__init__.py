"""Small I/O helpers shared by every artifact writer."""

from vlmscope.io.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from vlmscope.io.fingerprint import fingerprint_dir, fingerprint_files

__all__ = ["atomic_dir", "atomic_write_bytes", "atomic_write_text", "fingerprint_dir", "fingerprint_files"]
