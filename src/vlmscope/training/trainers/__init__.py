"""One module per trainer, each a ``<X>TrainConfig`` and one function run by the engine.

``projector``, ``lora``, ``clip`` and ``default_model`` share their public
signature and start (seed, run directory, resume fingerprint, recorded
inputs) through ``invocation``. ``projector``, ``lora`` and
``default_model`` train a generative VLM on the answer-span loss through the
``vlm_*`` modules they share (``vlm_setup``: rows, answer checks, freezing;
``vlm_run``: the run and its checkpoint; ``vlm_eval``: validation loss and
generation accuracy). ``clip`` trains a contrastive
image tower, ``vision_pretrain`` the vision tower on image labels, and
``output_layer`` refits the unembedding from stored activations
(``head_math``), without a model forward pass.
"""
