"""Range checks of numeric settings, shared by `Job`, `Cluster`, training and the command line."""
import math
import numbers


class RangeError(ValueError):
    """A numeric setting out of its range; `name` is the setting's field (the command line's option)."""

    def __init__(self, name: str, message: str):
        super().__init__(message)
        self.name = name

    def for_option(self) -> str:
        """The message with the field's name spelt as its command-line option (`--cpus-per-worker`)."""
        return str(self).replace(self.name, "--" + self.name.replace("_", "-"), 1)


def check_ranges(settings, ranges: dict) -> None:
    """Raise a one-line `RangeError` unless each attribute of `settings` named in `ranges`
    ({field: (low, high, whole)}) is a finite number in [low, high] (a whole number if `whole`)."""
    for name, (low, high, whole) in ranges.items():
        value = getattr(settings, name)
        kind = numbers.Integral if whole else numbers.Real
        if isinstance(value, kind) and not isinstance(value, bool) and math.isfinite(value) and low <= value <= high:
            continue
        what = "a whole number" if whole else "a number"
        bounds = f"from {low:g} to {high:g}" if high < math.inf else f"of at least {low:g}"
        raise RangeError(name, f"{name} {value!r} is out of range: give {what} {bounds}")
