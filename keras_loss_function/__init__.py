"""The SSD multibox loss (softmax confidence + smooth L1 localisation with hard negative mining)."""
