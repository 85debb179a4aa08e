"""HTTP routes. Model names in paths never contain "/" or ":" (the `model` convertor), so
`/v1/models/iris-knn:predict` is never mistaken for a model called "iris-knn:predict"."""

from starlette.convertors import Convertor, register_url_convertor


class ModelNameConvertor(Convertor[str]):
    """A model name path segment: anything but "/" and ":"."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model", ModelNameConvertor())
