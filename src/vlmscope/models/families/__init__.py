"""One module per model family; importing this package registers them all.

Each module registers its adapter in ``ADAPTERS`` and its tiny builder in
``TINY``. Add a family by adding its module and one import line below.
"""

# part B (Qwen-VL, InternVL, PaliGemma) appends its imports here.
from vlmscope.models.families import (
    clip,  # noqa: F401
    composite,  # noqa: F401
    internvl,  # noqa: F401
    llava,  # noqa: F401
    llava_next,  # noqa: F401
    llava_onevision,  # noqa: F401
    paligemma,  # noqa: F401
    qwen_vl,  # noqa: F401
    siglip,  # noqa: F401
)
