"""Admin routes (scope ``admin``): API clients and the audit log.

``POST /v1/admin/clients`` issues a client and shows its key once; ``DELETE`` revokes it;
both are written to the audit log. ``GET /v1/admin/audit`` searches the log, newest first,
one page at a time (``cursor`` = the ``next_cursor`` of the previous page).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from retailsync.api.auth import current_principal, require_scope
from retailsync.api.clients import (
    ApiClient,
    create_api_client,
    get_api_client,
    list_api_clients,
    revoke_api_client,
)
from retailsync.api.errors import UnknownApiClient
from retailsync.api.governance import Governance
from retailsync.api.problems import ProblemError
from retailsync.api.scopes import Principal, Scope
from retailsync.audit import AuditEntry, AuditFilter, list_audit_entries

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[require_scope(Scope.ADMIN)])

#: Entry ids are 64-bit signed integers on every database.
MAX_ENTRY_ID = 2**63 - 1

CallerDep = Annotated[Principal, Depends(current_principal)]


def _governance(request: Request) -> Governance:
    governance: Governance = request.app.state.governance
    return governance


def _correlation_id(request: Request) -> str | None:
    trace = getattr(request.state, "trace", None)
    return trace.trace_id if trace else None


class NewApiClient(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        min_length=1, max_length=200, pattern=r"[A-Za-z0-9]", examples=["zendesk-app"]
    )
    scopes: list[Scope] = Field(min_length=1, examples=[["experience:read"]])


class IssuedApiClient(BaseModel):
    client: ApiClient
    api_key: str = Field(description="Shown once: the hub keeps only a hash of it.")


class ApiClientList(BaseModel):
    clients: list[ApiClient]


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: int | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )


def _unknown_client(exc: UnknownApiClient) -> ProblemError:
    return ProblemError(404, "unknown-api-client", str(exc), title="Unknown API client")


@router.get("/clients", response_model=ApiClientList, summary="Every API client")
def list_clients(request: Request) -> ApiClientList:
    with _governance(request).engine.connect() as connection:
        return ApiClientList(clients=list_api_clients(connection))


@router.post(
    "/clients",
    status_code=201,
    response_model=IssuedApiClient,
    summary="Issue an API client; its key is in this response only",
)
def create_client(body: NewApiClient, request: Request, caller: CallerDep) -> IssuedApiClient:
    governance = _governance(request)
    with governance.engine.begin() as connection:
        issued = create_api_client(
            connection,
            name=body.name,
            scopes=body.scopes,
            pepper=governance.pepper,
            actor=caller.actor,
            correlation_id=_correlation_id(request),
        )
    return IssuedApiClient(client=issued.client, api_key=issued.key)


@router.get("/clients/{client_id}", response_model=ApiClient, summary="One API client")
def get_client(client_id: str, request: Request) -> ApiClient:
    with _governance(request).engine.connect() as connection:
        try:
            return get_api_client(connection, client_id)
        except UnknownApiClient as exc:
            raise _unknown_client(exc) from None


@router.delete(
    "/clients/{client_id}",
    response_model=ApiClient,
    summary="Revoke an API client: its key is refused from now on",
)
def revoke_client(
    client_id: str,
    request: Request,
    caller: CallerDep,
    reason: Annotated[str | None, Query(max_length=500)] = None,
) -> ApiClient:
    governance = _governance(request)
    with governance.engine.begin() as connection:
        try:
            revoked = revoke_api_client(
                connection,
                client_id,
                actor=caller.actor,
                correlation_id=_correlation_id(request),
                reason=reason,
            )
        except UnknownApiClient as exc:
            raise _unknown_client(exc) from None
    governance.forget_client(client_id)
    return revoked


@router.get("/audit", response_model=AuditPage, summary="Search the audit log, newest first")
def search_audit(
    request: Request,
    actor: str | None = None,
    action: str | None = None,
    entity_kind: str | None = None,
    entity_id: str | None = None,
    correlation_id: str | None = None,
    since: Annotated[datetime | None, Query(description="Inclusive lower bound")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive upper bound")] = None,
    cursor: Annotated[
        int | None, Query(ge=1, le=MAX_ENTRY_ID, description="`next_cursor` of the page before")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AuditPage:
    search = AuditFilter(
        actor=actor,
        action=action,
        entity_kind=entity_kind,
        entity_id=entity_id,
        correlation_id=correlation_id,
        since=since,
        until=until,
    )
    with _governance(request).engine.connect() as connection:
        entries = list_audit_entries(connection, search, before_id=cursor, limit=limit)
    next_cursor = entries[-1].id if len(entries) == limit else None
    return AuditPage(entries=entries, next_cursor=next_cursor)
