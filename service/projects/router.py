"""HTTP routes for projects: list (with what is in each), rename, delete. A project is
made by naming it when a job, sweep or comparison is submitted (or in a ``PATCH``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.deps import CurrentUser, DbDep, ProjectId, authenticated_router
from service.errors import CONFLICT_SCHEMA, NOT_FOUND_SCHEMA
from service.projects import service
from service.projects.models import Project
from service.projects.schemas import ProjectPage, ProjectRead, ProjectUpdate
from service.query import Limit, Offset

router = authenticated_router(prefix="/v1/projects", tags=["projects"])


def to_read(session: Session, rows: list[Project]) -> list[ProjectRead]:
    counts = service.counts(session=session, ids=[p.id for p in rows])
    return [
        ProjectRead(
            id=p.id,
            name=p.name,
            created_at=p.created_at,
            jobs=counts[p.id][0],
            sweeps=counts[p.id][1],
        )
        for p in rows
    ]


@router.get("", response_model=ProjectPage)
async def list_projects(
    user: CurrentUser, db: DbDep, limit: Limit = 50, offset: Offset = 0
) -> ProjectPage:
    """Your projects by name, each with how many jobs and sweeps are in it."""

    def work(session: Session) -> ProjectPage:
        rows, total = service.list_projects(
            session=session, owner=user.id, limit=limit, offset=offset
        )
        return ProjectPage(items=to_read(session, rows), total=total, limit=limit, offset=offset)

    return await db.run(work)


@router.patch(
    "/{project_id}",
    response_model=ProjectRead,
    responses={404: NOT_FOUND_SCHEMA, 409: CONFLICT_SCHEMA},
)
async def rename_project(
    project_id: ProjectId, update: ProjectUpdate, user: CurrentUser, db: DbDep
) -> ProjectRead:
    """Rename a project (409 if you have one of that name already)."""

    def work(session: Session) -> ProjectRead:
        project = service.rename(
            session=session, owner=user.id, project_id=project_id, name=update.name
        )
        return to_read(session, [project])[0]

    return await db.run(work)


@router.delete("/{project_id}", status_code=204, responses={404: NOT_FOUND_SCHEMA})
async def delete_project(project_id: ProjectId, user: CurrentUser, db: DbDep) -> None:
    """Delete a project: its jobs and sweeps stay, in no project."""

    def work(session: Session) -> None:
        service.delete(session=session, owner=user.id, project_id=project_id)

    await db.run(work)
