"""Model builders: SSD300, SSD512 and SSD7 in Keras 3.

Importing this package registers every custom layer the models use (`keras_layers` and the input
preprocessing layers) and the `SSDLoss` that training runs compile with, so
``keras.models.load_model(path)`` needs no ``custom_objects`` after ``import models``, also for a
run's compiled ``model.keras``.
"""

import keras_layers  # noqa: F401  (registers AnchorBoxes, L2Normalization, the decoders)
import keras_loss_function.keras_ssd_loss  # noqa: F401  (registers SSDLoss: runs save it)
from models import input_preprocessing  # noqa: F401  (registers the input preprocessing layers)
