"""The elevator e-bike detector: synthetic data, a tiny torch detector, ONNX export and model card.

Run ``python -m models.ebike.train`` (``make models``); torch is needed only here, never at runtime.
"""
