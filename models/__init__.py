"""Model builders: SSD300, SSD512 and SSD7 in Keras 3."""
