"""Edge vision runtime: frame sources, motion gate, detector, tracker, zones, evidence, analyzers.

Heavy imports (numpy, OpenCV, onnxruntime) live in these modules, never in ``edge.cli``, so
the culvert agent stays small. The elevator camera agent is ``edge.vision.agent``.
"""
