"""The converter stage: Keras model -> .tflite (float16, dynamic, int8, 16x8).

Empty until the export issue lands; the package exists so the layout and
imports are stable.
"""
