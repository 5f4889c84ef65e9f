"""Request and response shapes of predictions (``POST /v1/jobs/{id}/predict``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

#: Iris's first rows, as the docs and the schema's examples show them (4 features).
EXAMPLE_NAMES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
EXAMPLE_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
EXAMPLE_CSV = (
    ",".join(EXAMPLE_NAMES) + "\n" + "".join(",".join(map(str, row)) + "\n" for row in EXAMPLE_ROWS)
)

_NUMBER = {"type": "number"}
#: The JSON body, as JSON Schema. The route parses the body itself (JSON or CSV, by
#: Content-Type) so that a problem is reported by row and column; this documents it.
JSON_BODY_SCHEMA: dict[str, Any] = {
    "title": "PredictRequest",
    "type": "object",
    "required": ["rows"],
    "additionalProperties": False,
    "properties": {
        "rows": {
            "type": "array",
            "minItems": 1,
            "description": "Raw feature values, one row per sample, each either a list in the "
            "model's feature order (`feature_names` of the answer, or the manifest's "
            "`input.feature_names`) or an object of feature name → value with every "
            "feature. Finite numbers only; at most `DESCENT_PREDICT_MAX_ROWS` rows.",
            "items": {
                "anyOf": [
                    {"type": "array", "items": _NUMBER, "minItems": 1},
                    {"type": "object", "additionalProperties": _NUMBER, "minProperties": 1},
                ]
            },
        }
    },
}

#: The request body of the route in the OpenAPI description: JSON, a CSV body, or a CSV
#: file in a form.
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {
            "schema": JSON_BODY_SCHEMA,
            "examples": {
                "lists": {"summary": "Rows in feature order", "value": {"rows": EXAMPLE_ROWS}},
                "named": {
                    "summary": "Rows by feature name",
                    "value": {"rows": [dict(zip(EXAMPLE_NAMES, EXAMPLE_ROWS[0], strict=True))]},
                },
            },
        },
        "text/csv": {
            "schema": {
                "type": "string",
                "description": "UTF-8 CSV: a header row naming every feature (any order), "
                "then one row per sample.",
            },
            "example": EXAMPLE_CSV,
        },
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "A UTF-8 CSV file, as the text/csv body is.",
                    }
                },
            },
            "encoding": {"file": {"contentType": "text/csv"}},
        },
    },
}


class PredictionRead(BaseModel):
    """A model's predictions for the rows sent, in their order."""

    job_id: str
    task: Literal["classification", "regression"]
    n_rows: int
    saved_epoch: int = Field(description="The epoch whose weights made these predictions.")
    feature_names: list[str] = Field(description="The model's features, in the order it takes.")
    labels: list[str] | None = Field(
        None, description="Classification: the class labels, in the order of `probabilities`."
    )
    predictions: list[str] | list[float] = Field(
        description="Per row: the most probable class's label (classification) or the "
        "predicted value in the target's own units (regression)."
    )
    probabilities: list[list[float]] | None = Field(
        None, description="Classification: per row, each class's probability, in `labels` order."
    )


#: The CSV answer (`?format=csv` or `Accept: text/csv`), as the docs show it.
EXAMPLE_CSV_ANSWER = (
    "prediction,probability_setosa,probability_versicolor,probability_virginica\n"
    "setosa,0.97,0.02,0.01\nvirginica,0.01,0.09,0.9\n"
)
