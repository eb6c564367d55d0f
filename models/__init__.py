"""Model builders: SSD300, SSD512 and SSD7 in Keras 3.

Importing this package registers every custom layer the models use (`keras_layers` and the input
preprocessing layers), so ``keras.models.load_model(path)`` needs no ``custom_objects`` after
``import models``.
"""

import keras_layers  # noqa: F401  (registers AnchorBoxes, L2Normalization, the decoders)
from models import input_preprocessing  # noqa: F401  (registers the input preprocessing layers)
