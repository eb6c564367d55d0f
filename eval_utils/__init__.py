"""Evaluation: Pascal VOC average precision and COCO helpers."""
