"""The street detector: the COCO CenterNet fine-tuned on rendered street scenes (issue 15)."""
