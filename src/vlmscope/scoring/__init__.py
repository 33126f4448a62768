"""What evaluation and training both compute from a model's answer: the answer-span loss.

It sits below both so that neither imports the other: evaluation scores
options by it (``--mode option-loss``), training minimises it.
"""
