"""The example's on-device pipeline (``examples/plan-pipeline.yaml``): a raw digit image in,
a class out.  It runs on the board under the agent's rules: standard library + numpy only,
Python 3.8+.

``preprocess`` gets one decoded PNG (uint8, 8x8, 0-255) and returns the model's input: float32
[1, 1, 8, 8] in [0, 1] (NCHW; the agent transposes it for the NHWC TFLite models and
quantizes it for the int8 one).  ``postprocess`` gets the model's outputs (float logits)
and returns the class index.
"""

import numpy as np


def preprocess(image):
    x = np.asarray(image, dtype=np.float32) / 255.0
    return x.reshape(1, 1, 8, 8)


def postprocess(outputs):
    logits = np.asarray(outputs[0]).reshape(-1)
    shifted = np.exp(logits - logits.max())  # softmax: the class and how sure it is
    probs = shifted / shifted.sum()
    return int(np.argmax(probs))
