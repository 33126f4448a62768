"""Small I/O toolkit shared by every artifact writer and reader.

Atomic writes, one JSON format, one progress bar, one way to open an
activation store and check a variable (see each module for the why).
"""

from vlmscope.io.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from vlmscope.io.fingerprint import fingerprint_dir, fingerprint_files
from vlmscope.io.jsonfile import dump_json, write_json
from vlmscope.io.progress import progress_bar, track

__all__ = [
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "dump_json",
    "fingerprint_dir",
    "fingerprint_files",
    "progress_bar",
    "track",
    "write_json",
]
