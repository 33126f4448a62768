"""One module per model family; importing this package registers them all.

Each module registers its adapter in ``ADAPTERS`` and its tiny builder in
``TINY``. Add a family by adding its module and one import line below.
"""

from vlmscope.models.families import llava  # noqa: F401
from vlmscope.models.families import llava_next  # noqa: F401
from vlmscope.models.families import llava_onevision  # noqa: F401
from vlmscope.models.families import composite  # noqa: F401
from vlmscope.models.families import clip  # noqa: F401
from vlmscope.models.families import siglip  # noqa: F401

# part B (Qwen-VL, InternVL, PaliGemma) appends its imports here.
from vlmscope.models.families import qwen_vl  # noqa: F401
from vlmscope.models.families import internvl  # noqa: F401
from vlmscope.models.families import paligemma  # noqa: F401
