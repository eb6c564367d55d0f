"""Datasets and augmentation: DataGenerator, parsers, HDF5 datasets and the image/box transforms."""

# Image/box transforms and augmentation chains. Other parts append with `__all__ += [...]`.
from data_generator.data_augmentation_chain_constant_input_size import (
    DataAugmentationConstantInputSize,
)
from data_generator.data_augmentation_chain_original_ssd import SSDDataAugmentation
from data_generator.data_augmentation_chain_satellite import DataAugmentationSatellite
from data_generator.data_augmentation_chain_variable_input_size import (
    DataAugmentationVariableInputSize,
)
from data_generator.object_detection_2d_geometric_ops import (
    Flip,
    RandomFlip,
    RandomRotate,
    RandomScale,
    RandomTranslate,
    Resize,
    ResizeRandomInterp,
    Rotate,
    Scale,
    Translate,
)
from data_generator.object_detection_2d_image_boxes_validation_utils import (
    BoundGenerator,
    BoxFilter,
    ImageValidator,
)
from data_generator.object_detection_2d_misc_utils import (
    DEFAULT_LABELS_FORMAT,
    apply_inverse_transforms,
)
from data_generator.object_detection_2d_patch_sampling_ops import (
    Crop,
    CropPad,
    Pad,
    PatchCoordinateGenerator,
    RandomMaxCropFixedAR,
    RandomPadFixedAR,
    RandomPatch,
    RandomPatchInf,
)
from data_generator.object_detection_2d_photometric_ops import (
    Brightness,
    ChannelSwap,
    Contrast,
    ConvertColor,
    ConvertDataType,
    ConvertTo3Channels,
    Gamma,
    HistogramEqualization,
    Hue,
    RandomBrightness,
    RandomChannelSwap,
    RandomContrast,
    RandomGamma,
    RandomHistogramEqualization,
    RandomHue,
    RandomSaturation,
    Saturation,
)

__all__: list[str] = []
__all__ += [
    "DEFAULT_LABELS_FORMAT",
    "BoundGenerator",
    "BoxFilter",
    "Brightness",
    "ChannelSwap",
    "Contrast",
    "ConvertColor",
    "ConvertDataType",
    "ConvertTo3Channels",
    "Crop",
    "CropPad",
    "DataAugmentationConstantInputSize",
    "DataAugmentationSatellite",
    "DataAugmentationVariableInputSize",
    "Flip",
    "Gamma",
    "HistogramEqualization",
    "Hue",
    "ImageValidator",
    "Pad",
    "PatchCoordinateGenerator",
    "RandomBrightness",
    "RandomChannelSwap",
    "RandomContrast",
    "RandomFlip",
    "RandomGamma",
    "RandomHistogramEqualization",
    "RandomHue",
    "RandomMaxCropFixedAR",
    "RandomPadFixedAR",
    "RandomPatch",
    "RandomPatchInf",
    "RandomRotate",
    "RandomSaturation",
    "RandomScale",
    "RandomTranslate",
    "Resize",
    "ResizeRandomInterp",
    "Rotate",
    "SSDDataAugmentation",
    "Saturation",
    "Scale",
    "Translate",
    "apply_inverse_transforms",
]

# DataGenerator (parsers, HDF5, batches, PyDataset form), image reading, the bad-item report and
# the synthetic shapes dataset.
from data_generator.data_report import (  # noqa: E402
    DataIssue,
    DataReport,
    DataValidationError,
    DataWarning,
)
from data_generator.image_io import ImageReadError, read_image  # noqa: E402
from data_generator.object_detection_2d_data_generator import (  # noqa: E402
    RETURNS_ORDER,
    VOC_CLASSES,
    DataGenerator,
    DatasetError,
    DegenerateBatchError,
)


def __getattr__(name):
    # The synthetic shapes module is also a script (`python -m data_generator.synthetic_shapes`);
    # importing it here eagerly would make runpy warn that it is already in sys.modules.
    if name in ("SHAPE_CLASSES", "make_synthetic_dataset"):
        from data_generator import synthetic_shapes

        return getattr(synthetic_shapes, name)
    raise AttributeError(f"module 'data_generator' has no attribute {name!r}")


__all__ += [
    "RETURNS_ORDER",
    "SHAPE_CLASSES",
    "VOC_CLASSES",
    "DataGenerator",
    "DataIssue",
    "DataReport",
    "DataValidationError",
    "DataWarning",
    "DatasetError",
    "DegenerateBatchError",
    "ImageReadError",
    "make_synthetic_dataset",
    "read_image",
]
