"""Turning Python values into the instances the friendly API takes.

NumPy and Pillow are optional: an array or a PIL image can only reach these functions if the
caller already imported its library, so it is recognised through `sys.modules` and the
libraries are imported only to encode such an object.
"""

from __future__ import annotations

import base64
import io
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeAlias, cast

if TYPE_CHECKING:  # only for type checkers: neither is a dependency
    import numpy.typing as npt
    from PIL.Image import Image as PILImage

#: The grid an image model takes as is (mnist-cnn: 28x28 grey levels 0-255, white on black).
GRID_SHAPE = (28, 28)

#: One image for `predict_image`: a file path, the bytes of an image file (PNG, JPEG, ...), an
#: open binary file, a PIL image, or a NumPy array (a 28x28 grid of grey levels 0-255, white
#: digit on black, is sent as is; any other array is encoded to PNG).
_Array: TypeAlias = "npt.NDArray[Any]"
ImageLike: TypeAlias = (
    "str | os.PathLike[str] | bytes | bytearray | memoryview | BinaryIO | PILImage | _Array"
)

# The exact command for the interpreter running the client (an app's own environment).
_INSTALL_IMAGES = f"{sys.executable} -m pip install 'pillow>=10.4'"


def _is_ndarray(value: object) -> bool:
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _is_pil_image(value: object) -> bool:
    pil_image = sys.modules.get("PIL.Image")
    return pil_image is not None and isinstance(value, pil_image.Image)


def json_instances(instances: Any) -> list[Any]:
    """`instances` as a JSON-ready list: NumPy arrays (the whole batch or single instances)
    become nested lists. Raises TypeError for a bare string or a non-sequence."""
    if _is_ndarray(instances):
        listed: list[Any] = instances.tolist()
        return listed
    if isinstance(instances, str | bytes) or not isinstance(instances, Sequence):
        raise TypeError(
            "instances must be a list of instances (one per prediction), e.g. "
            f"[[5.1, 3.5, 1.4, 0.2]]; got {type(instances).__name__}"
        )
    return [item.tolist() if _is_ndarray(item) else item for item in instances]


def text_instances(texts: str | Sequence[str]) -> list[str]:
    """One text or a sequence of texts, as a list of strings (TypeError for anything else)."""
    if isinstance(texts, str):
        return [texts]
    listed = list(texts)
    for index, text in enumerate(listed):
        if not isinstance(text, str):
            raise TypeError(f"texts[{index}] must be a str, got {type(text).__name__}")
    return listed


def _b64(data: bytes) -> dict[str, str]:
    return {"b64": base64.b64encode(data).decode("ascii")}


def _png(image: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _array_instance(array: Any) -> Any:
    import numpy as np

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.shape == GRID_SHAPE:
        return array.tolist()
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ValueError(
            f"an image array must be HxW (grey), HxWx3 (RGB) or HxWx4 (RGBA); got shape "
            f"{array.shape}"
        )
    try:
        from PIL import Image
    except ImportError:
        raise ImportError(
            f"encoding a {array.shape} array to PNG needs Pillow: {_INSTALL_IMAGES}"
        ) from None
    if array.dtype != np.uint8:
        is_float = array.dtype.kind == "f"
        array = np.nan_to_num(array.astype(np.float64))
        # Floats within [0, 1] (matplotlib's imread, scikit-image) are fractions of full
        # scale: on 0-255 they would round to a blank image.
        if is_float and array.size and array.min() >= 0.0 and array.max() <= 1.0:
            array = np.rint(array * 255.0)
        array = np.clip(array, 0, 255).astype(np.uint8)
    return _b64(_png(Image.fromarray(array)))


def image_instance(image: ImageLike) -> Any:
    """One image as an instance: a 28x28 grid (nested lists) or `{"b64": ...}`.

    Raises TypeError for an unsupported type, ValueError for an array of an unusable shape,
    OSError when a path cannot be read.
    """
    if isinstance(image, str | os.PathLike):
        return _b64(Path(image).read_bytes())
    if isinstance(image, bytes | bytearray | memoryview):
        return _b64(bytes(image))
    if _is_ndarray(image):
        return _array_instance(image)
    if _is_pil_image(image):
        return _b64(_png(image))
    if hasattr(image, "read"):
        data = image.read()
        if isinstance(data, bytes):
            return _b64(data)
    raise TypeError(
        "an image must be a file path, the bytes of an image file, a binary file, a PIL image "
        f"or a NumPy array; got {type(image).__name__}"
    )


def image_instances(images: ImageLike | Sequence[ImageLike]) -> list[Any]:
    """One image, or a list/tuple of them, as instances (see `image_instance`)."""
    if isinstance(images, list | tuple):
        return [image_instance(image) for image in images]
    # Anything else is one image (a str is a path, an array one image, not a batch).
    return [image_instance(cast("ImageLike", images))]
