"""Checks of raw data that would otherwise train on garbage or crash: one InvalidJob each.

Pure functions of arrays. Every message names the file, the column or array, and the first
offending rows (tabular rows 1-based as in the file, array samples as indexes `x[7]`).
Rules:
- a tabular column that mixes numbers and text is an error, unless it is declared categorical
  (one stray cell would otherwise turn a numeric column into one category per value);
- NaN and empty cells are missing values (preprocessing.cleaning.missing); infinite values are
  never missing: an error naming the column and rows;
- arrays are not cleaned: NaN or infinite inputs or labels are an error naming the samples;
- labels are one class or one number per sample: shape (N,) or (N, 1), never one-hot.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kubetrain.errors import InvalidJob

SHOWN = 3  # offending cells named in a message; the rest are counted

REGRESSION_LOSSES = ("mse", "huber")
CLASSIFICATION_LOSSES = ("cross_entropy", "bce")


def is_number(v: object) -> bool:
    """A cell of a text column that reads as a number (as the CSV reader would have read it)."""
    try:
        float(str(v))
    except ValueError:
        return False
    return True


def text_cells(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indexes of cells that read as numbers, indexes of other non-empty cells)."""
    numeric = np.array([v is not None and is_number(v) for v in values], dtype=bool)
    present = np.array([v is not None for v in values], dtype=bool)
    return np.flatnonzero(numeric), np.flatnonzero(present & ~numeric)


def listed(rows: np.ndarray, where: Callable[[int], str], values: np.ndarray,
           form: str = "{where} is {value}") -> str:
    """"row 7 (line 8) is 'abc', row 9 (line 10) is '?' and 3 more"."""
    parts = [form.format(where=where(int(i)), value=repr(_cell(values[i])),
                         number=_cell(values[i])) for i in rows[:SHOWN]]
    more = f" and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""
    return ", ".join(parts) + more


def _cell(v: object) -> str:
    return str(v.item() if isinstance(v, np.generic) else v)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def check_text_column(name: str, values: np.ndarray, where: Callable[[int], str], *,
                      label: bool, loss: str | None, source: str) -> None:
    """A text (object) column: all numbers or all text, unless the user said otherwise."""
    numbers, texts = text_cells(values)
    what = f"label column {name!r}" if label else f"column {name!r}"
    if label and loss in CLASSIFICATION_LOSSES:
        return  # every value is a class name, as the user said
    if label and loss in REGRESSION_LOSSES:
        if len(texts):
            raise InvalidJob(
                f"{source}: {what} must hold numbers for training.loss {loss}, but"
                f" {listed(texts, where, values)} ({len(texts)} of {_n(len(values), 'cell')})")
        return
    if not len(numbers) or not len(texts):
        return
    odd = texts if len(texts) <= len(numbers) else numbers
    kind = "text" if odd is texts else "numbers"
    way_out = ("set training.loss: cross_entropy to treat every value as a class name" if label
               else f"list {name!r} in columns.categorical to treat every value as a category")
    raise InvalidJob(
        f"{source}: {what} mixes numbers and text: {listed(odd, where, values)}"
        f" ({len(odd)} of {_n(len(values), 'cell')} {'is' if len(odd) == 1 else 'are'} {kind});"
        f" fix those cells, or {way_out}")


def check_finite_column(name: str, values: np.ndarray, where: Callable[[int], str], *,
                        label: bool, source: str) -> None:
    """Infinite numbers are an error (NaN is a missing value, handled by cleaning)."""
    bad = np.flatnonzero(np.isinf(values))
    if len(bad):
        what = f"label column {name!r}" if label else f"column {name!r}"
        raise InvalidJob(
            f"{source}: {what} has infinite values:"
            f" {listed(bad, where, values, '{where} ({number})')} ({_n(len(bad), 'cell')});"
            " infinite values are not treated as missing: fix them, or"
            " empty the cells so that preprocessing.cleaning.missing handles them")


def check_missing_labels(name: str, values: np.ndarray, where: Callable[[int], str], *,
                         source: str) -> None:
    """A missing label cannot be filled: name the rows to drop or fix."""
    missing = (np.isnan(values) if values.dtype.kind == "f"
               else np.array([v is None for v in values], dtype=bool))
    bad = np.flatnonzero(missing)
    if len(bad):
        rows = ", ".join(where(int(i)) for i in bad[:SHOWN])
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise InvalidJob(f"{source}: label column {name!r} has {len(bad)} missing (NaN/empty)"
                         f" values: {rows}{more}; drop or fill those rows")


def check_array(a: np.ndarray, what: str, *, inputs: bool) -> None:
    """One array of an .npz/.npy: one row per sample, of numbers (labels may also be text)."""
    if a.ndim == 0:
        raise InvalidJob(f"{what} is 0-d (a single value, {repr(a.item())[:40]}); it needs one"
                         f" {'row' if inputs else 'label'} per sample")
    kind = a.dtype.kind
    if kind in "biuf" or (not inputs and kind in "US"):
        return
    found = {"U": "text", "S": "bytes", "O": "Python objects", "c": "complex numbers",
             "M": "dates", "m": "time spans", "V": "records"}.get(kind, f"dtype {a.dtype}")
    need = "real numbers" if inputs else "class names or numbers"
    raise InvalidJob(f"{what} holds {found} (dtype {a.dtype}); {'inputs' if inputs else 'labels'}"
                     f" must be {need}")


def check_finite_samples(a: np.ndarray, what: str, index: str) -> None:
    """No NaN or infinite value in any sample of a float array (arrays are not cleaned)."""
    if a.dtype.kind != "f" or len(a) == 0:
        return
    bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(axis=1))
    if len(bad):
        shown = ", ".join(f"{index}[{i}]" for i in bad[:SHOWN])
        more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
        raise InvalidJob(f"{what} has NaN or infinite values in {_n(len(bad), 'sample')}"
                         f" ({shown}{more});"
                         " arrays are not cleaned (preprocessing.cleaning is for tabular data):"
                         " fix or remove those samples")


def label_vector(y: np.ndarray, what: str) -> np.ndarray:
    """Labels as shape (N,): (N, 1) is squeezed; one-hot or other 2-D labels are an error."""
    if y.ndim == 2 and y.shape[1] == 1:
        return y[:, 0]
    if y.ndim != 1:
        hint = (" (for one-hot labels save y.argmax(1))" if y.ndim == 2 else "")
        raise InvalidJob(f"{what} has shape {tuple(y.shape)}; labels must be one class or one"
                         f" number per sample, shape ({len(y)},){hint}")
    return y


def check_regression_labels(y: np.ndarray, what: str, index: str) -> None:
    """Regression targets are numbers."""
    if y.dtype.kind in "biuf":
        return
    bad = np.flatnonzero([not is_number(v) for v in y])
    if len(bad):
        shown = ", ".join(f"{index}[{i}] is {_cell(y[i])!r}" for i in bad[:SHOWN])
        raise InvalidJob(f"{what} must hold numbers for a regression loss, but {shown}"
                         f" ({len(bad)} of {len(y)} labels)")


def check_classes(classes: list[str], what: str) -> None:
    """Classification needs two classes in the training split."""
    if len(classes) < 2:
        found = f"one class ({classes[0]!r})" if classes else "no classes"
        raise InvalidJob(f"{what} has {found} in the training split; classification needs at"
                         " least two (is it the right label, and is the data complete?)")
