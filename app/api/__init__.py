"""HTTP routes. Model names and versions in paths never contain "/" or ":" (the `model` and
`version` convertors), so `/v1/models/iris-knn:predict` is never mistaken for a model called
"iris-knn:predict", nor `GET .../versions/1:predict` for the card of a version "1:predict" (it
is a 405: `:predict` takes POST)."""

from starlette.convertors import Convertor, register_url_convertor


class PathSegmentConvertor(Convertor[str]):
    """A model name or version path segment: anything but "/" and ":"."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model", PathSegmentConvertor())
register_url_convertor("version", PathSegmentConvertor())
