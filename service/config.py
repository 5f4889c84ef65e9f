"""Settings, read from ``DESCENT_*`` environment variables.

The defaults describe the embedded mode: everything lives under one data
directory (``./.descent``), the database is a SQLite file and the Celery broker
is Celery's SQLAlchemy transport on a second SQLite file. The full stack sets
``DESCENT_DATABASE_URL`` (PostgreSQL) and ``DESCENT_BROKER_URL`` (Redis).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DESCENT_", extra="ignore")

    environment: Literal["development", "production"] = Field(
        "development", description="`production` refuses the embedded SQLite defaults."
    )
    data_dir: Path = Field(Path(".descent"), description="Root of the embedded mode's files.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default: a SQLite file in the data dir."
    )
    broker_url: str | None = Field(
        None, description="Celery broker URL; default: SQLAlchemy transport on SQLite."
    )
    artifacts_dir: Path | None = Field(
        None, description="Model files and uploaded datasets; default: <data_dir>/artifacts."
    )
    queue: str = Field("descent", description="Celery queue the training tasks go to.")

    # Caps a job spec is validated against (422 above them).
    max_epochs: int = Field(1000, ge=1)
    max_parameters: int = Field(20_000_000, ge=1)
    max_synthetic_samples: int = Field(200_000, ge=10)

    # Caps on uploaded CSV datasets.
    max_upload_bytes: int = Field(50 * 1024 * 1024, ge=1024)
    max_dataset_rows: int = Field(1_000_000, ge=10)
    max_dataset_columns: int = Field(1_000, ge=2)
    max_line_bytes: int = Field(1024 * 1024, ge=64)

    # Worker side.
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads; 0 = torch's choice.")
    cancel_poll_seconds: float = Field(
        0.5, gt=0, description="How often a running job looks for a cancel request."
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{(self.data_dir / 'descent.sqlite').as_posix()}"
        if self.broker_url is None:
            self.broker_url = f"sqla+sqlite:///{(self.data_dir / 'broker.sqlite').as_posix()}"
        if self.artifacts_dir is None:
            self.artifacts_dir = self.data_dir / "artifacts"
        if self.environment == "production" and (
            self.database_url.startswith("sqlite") or self.broker_url.startswith("sqla+sqlite")
        ):
            raise ValueError(
                "DESCENT_ENVIRONMENT=production needs DESCENT_DATABASE_URL and "
                "DESCENT_BROKER_URL set to real servers (PostgreSQL and Redis), not SQLite"
            )
        return self

    @property
    def jobs_dir(self) -> Path:
        assert self.artifacts_dir is not None
        return self.artifacts_dir / "jobs"

    @property
    def datasets_dir(self) -> Path:
        assert self.artifacts_dir is not None
        return self.artifacts_dir / "datasets"


@lru_cache
def get_settings() -> Settings:
    return Settings()
